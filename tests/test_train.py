"""The training loop (minisnn.train.fit): shuffling, early stopping, NaN stop, callbacks."""

import numpy as np
import pytest

import minisnn as ms
from minisnn.layers import Neurons
from minisnn.neurons import SoftLIFRate
from minisnn.train import Callback, TrainingStopped, ann_loss, fit, forward_with_activations


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return ms.Sequential(ms.Dense(3, 8, rng=rng, dtype=np.float64), Neurons(SoftLIFRate(sigma=0.1, amplitude=0.01)),
                         ms.Dense(8, 1, rng=rng, dtype=np.float64))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3))
    return x, x.sum(axis=1, keepdims=True) * 0.3


class Recorder(Callback):
    def __init__(self, model):
        self.model, self.states, self.batches = model, [], 0

    def on_batch_end(self, info):
        assert {"epoch", "batch", "n_batches", "loss"} <= set(info)
        self.batches += 1

    def on_epoch_end(self, history):
        self.states.append(self.model.state_dict())


def test_fit_trains_and_is_deterministic():
    x, y = data()
    finals = []
    for _ in range(2):
        net = small_net()
        rec = Recorder(net)
        hist = fit(net, lambda a, b: ann_loss(net, a, b), (x, y), epochs=5, batch_size=16, lr=0.01, seed=3,
                   callbacks=[rec])
        finals.append(net.state_dict())
        assert rec.batches == 5 * 4 and len(rec.states) == 5
        assert hist["epochs_run"] == 5 and len(hist["loss"]) == 5 and hist["stopped"] is None
        assert hist["loss"][-1] < hist["loss"][0]
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k])


def test_fit_drops_the_scratch_and_recycled_buffers_when_done(monkeypatch):
    """A training run's buffers (scratch and recycled column matrices) are released when fit
    returns, also when it stops with an exception."""
    from minisnn.ops import scratch

    monkeypatch.setattr(scratch, "RECYCLE_MIN_BYTES", 1)
    monkeypatch.setattr("minisnn.ops.conv.DIRECT_MAX_WORK", -1)  # the column path
    rng = np.random.default_rng(0)
    net = ms.Sequential(ms.Conv2d(1, 2, 3, padding=1, rng=rng, dtype=np.float64), ms.Flatten(),
                        ms.Dense(2 * 5 * 5, 1, rng=rng, dtype=np.float64))
    x, y = rng.standard_normal((8, 1, 5, 5)), rng.standard_normal((8, 1))
    seen = []

    class Look(Callback):
        def on_batch_end(self, info):
            seen.append(set(vars(scratch._local)))

    fit(net, lambda a, b: ann_loss(net, a, b), (x, y), epochs=1, batch_size=4, callbacks=[Look()])
    assert "pool" in seen[-1]  # the conv's columns were recycled during training
    assert not {"pool", "buffers"} & set(vars(scratch._local))

    def boom(a, b):
        scratch.scratch("t", (3,), np.float64)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit(net, boom, (x, y), epochs=1, batch_size=4)
    assert not {"pool", "buffers"} & set(vars(scratch._local))


def test_forward_with_activations_matches_the_forward():
    net = small_net()
    x, _ = data(5)
    out, acts = forward_with_activations(net, x)
    with ms.no_grad():
        np.testing.assert_array_equal(out.data, net(x).data)
    assert list(acts) == ["1"] and acts["1"].shape == (5, 8)


def test_early_stopping_restores_the_best_epoch():
    x, y = data()
    net = small_net()
    rec = Recorder(net)
    scores = iter([5.0, 3.0, 1.0, 2.0, 4.0, 0.5, 0.1])  # best at epoch 2, then two worse epochs
    hist = fit(net, lambda a, b: ann_loss(net, a, b), (x, y), val_fn=lambda: next(scores), epochs=7,
               batch_size=32, lr=0.01, patience=2, callbacks=[rec])
    assert hist["stopped"] == "early stopping" and hist["epochs_run"] == 5
    assert hist["best_epoch"] == 2 and hist["best_val"] == 1.0
    assert "early stopping" in hist["message"]
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, rec.states[2][k])
    assert not np.array_equal(net.state_dict()["0.w"], rec.states[-1]["0.w"])


def test_mode_max_keeps_the_highest_metric():
    x, y = data()
    net = small_net()
    rec = Recorder(net)
    scores = iter([0.5, 0.9, 0.7])
    hist = fit(net, lambda a, b: ann_loss(net, a, b), (x, y), val_fn=lambda: next(scores), epochs=3,
               goal="max", callbacks=[rec])
    assert hist["best_epoch"] == 1
    np.testing.assert_array_equal(net.state_dict()["0.w"], rec.states[1]["0.w"])


def test_nan_loss_stops_with_a_message_and_the_last_good_weights():
    x, y = data()
    net = small_net()
    rec = Recorder(net)
    calls = {"n": 0}

    def step(a, b):
        calls["n"] += 1
        loss, info = ann_loss(net, a, b)
        if calls["n"] == 7:  # epoch 1, batch 2 (4 batches per epoch)
            loss = loss * np.nan
        return loss, info

    hist = fit(net, step, (x, y), epochs=5, batch_size=16, lr=0.01, callbacks=[rec])
    assert hist["stopped"] == "non-finite loss"
    assert "loss nan" in hist["message"] and "epoch 1, batch 2" in hist["message"]
    assert hist["epochs_run"] == 1
    for k, v in net.state_dict().items():  # epoch 0's weights, all finite
        np.testing.assert_array_equal(v, rec.states[0][k])
        assert np.isfinite(v).all()
    calls["n"] = 0
    with pytest.raises(TrainingStopped, match="non-finite|nan"):
        fit(net, step, (x, y), epochs=5, batch_size=16, lr=0.01, raise_on_nan=True)


def test_inf_loss_in_the_first_batch_restores_the_initial_weights():
    x, y = data()
    net = small_net()
    start = net.state_dict()
    hist = fit(net, lambda a, b: ann_loss(net, a, b)[0] * np.inf, (x, y), epochs=2)
    assert hist["stopped"] == "non-finite loss" and "initial weights" in hist["message"]
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, start[k])


def test_bad_arguments():
    x, y = data()
    net = small_net()
    step = lambda a, b: ann_loss(net, a, b)  # noqa: E731
    with pytest.raises(ValueError, match="goal"):
        fit(net, step, (x, y), goal="best")
    with pytest.raises(ValueError, match="batch_size"):
        fit(net, step, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="targets"):
        fit(net, step, (x, y[:3]))


def test_validate_first_keeps_the_initial_weights_when_no_epoch_beats_them():
    x, y = data()
    net = small_net()
    start = net.state_dict()
    with ms.no_grad():
        ref = net(x).data.copy()

    def val():  # closeness to the initial outputs: any training makes it worse
        with ms.no_grad():
            return -float(((net(x).data - ref) ** 2).mean())

    hist = fit(net, lambda xb, yb: ann_loss(net, xb, yb), (x, y + 5.0), val_fn=val, epochs=3, lr=0.05,
               goal="max", validate_first=True, patience=2)
    assert hist["val_initial"] == 0.0 and hist["best_epoch"] == -1
    assert all(v < 0 for v in hist["val"])  # the epochs did move the net
    assert "the initial weights" in hist["message"]
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, start[k])


# ----------------------------------------------------------------------------- checkpoints and resume


class Crash(Exception):
    """Stands in for a power cut: raised from inside an epoch."""


class CrashAt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, info):
        if (info["epoch"], info["batch"]) == (self.epoch, self.batch):
            raise Crash


def _augmented_run(path, *, epochs=6, crash=None, resume=False, patience=None, scores=None, seed=3):
    """A run whose step function draws from its own generator (as the apps' augmentation does)."""
    x, y = data()
    net = small_net()
    aug = np.random.default_rng([seed, 17])

    def step(a, b):
        noise = aug.standard_normal(a.shape) * 0.05
        return ann_loss(net, a + noise, b)

    val = None if scores is None else (lambda it=iter(scores): next(it))
    cbs = [] if crash is None else [CrashAt(*crash)]
    hist = fit(net, step, (x, y), val_fn=val, epochs=epochs, batch_size=16, lr=0.01, seed=seed, patience=patience,
               callbacks=cbs, checkpoint=path, resume=resume, rngs={"augment": aug})
    return net, hist


def _same_history(a, b):
    for k in ("loss", "task_loss", "reg_loss", "val"):
        assert a[k] == b[k], k
    for k in ("best_epoch", "best_val", "epochs_run", "stopped", "message"):
        assert a[k] == b[k], k


def test_resume_after_a_crash_mid_epoch_is_bit_identical(tmp_path):
    ref_net, ref = _augmented_run(tmp_path / "ref.npz")
    path = tmp_path / "state.npz"
    with pytest.raises(Crash):
        _augmented_run(path, crash=(3, 1))  # epochs 0-2 done and saved, epoch 3 half done
    from minisnn.train import read_fit_state
    _, meta = read_fit_state(path)
    assert meta["history"]["epochs_run"] == 3
    net, hist = _augmented_run(path, resume=True)
    assert hist["resumed_from"] == 3
    _same_history(hist, ref)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, ref_net.state_dict()[k])


def test_resume_restores_early_stopping_counters(tmp_path):
    scores = [5.0, 3.0, 1.0, 2.0, 4.0, 0.5, 0.1]  # best at epoch 2; patience 2 stops after epoch 4
    ref_net, ref = _augmented_run(tmp_path / "ref.npz", epochs=7, patience=2, scores=scores)
    assert ref["stopped"] == "early stopping" and ref["epochs_run"] == 5
    path = tmp_path / "state.npz"
    with pytest.raises(Crash):
        _augmented_run(path, epochs=7, patience=2, scores=scores, crash=(4, 0))  # since_best = 1 saved
    net, hist = _augmented_run(path, epochs=7, patience=2, scores=scores[4:], resume=True)
    _same_history(hist, ref)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, ref_net.state_dict()[k])


def test_resuming_a_finished_run_trains_nothing_and_restores_the_best_weights(tmp_path):
    path = tmp_path / "state.npz"
    ref_net, ref = _augmented_run(path, epochs=3, scores=[0.3, 0.1, 0.2])
    x, y = data()
    net = small_net()
    aug = np.random.default_rng([3, 17])

    def step(a, b):
        raise AssertionError("a finished run must not train again")

    hist = fit(net, step, (x, y), val_fn=lambda: 1 / 0, epochs=3, batch_size=16, lr=0.01, seed=3,
               checkpoint=path, resume=True, rngs={"augment": aug})
    _same_history(hist, ref)
    assert hist["best_epoch"] == 1
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, ref_net.state_dict()[k])


def test_validate_first_is_not_repeated_on_resume(tmp_path):
    x, y = data()
    path = tmp_path / "state.npz"
    calls = []

    def run(crash=None, resume=False):
        net = small_net()

        def val():
            calls.append(1)
            return 0.5

        return fit(net, lambda a, b: ann_loss(net, a, b), (x, y), val_fn=val, epochs=3, batch_size=16,
                   validate_first=True, goal="max", checkpoint=path, resume=resume,
                   callbacks=[] if crash is None else [CrashAt(*crash)])

    with pytest.raises(Crash):
        run(crash=(1, 0))
    assert len(calls) == 2  # the initial weights and epoch 0
    hist = run(resume=True)
    assert len(calls) == 4 and hist["val_initial"] == 0.5 and hist["best_epoch"] == -1


def test_resume_without_a_checkpoint_file_starts_afresh(tmp_path):
    _, ref = _augmented_run(tmp_path / "a.npz", epochs=2)
    _, hist = _augmented_run(tmp_path / "b.npz", epochs=2, resume=True)
    assert "resumed_from" not in hist
    _same_history(hist, ref)


def test_resume_refuses_other_settings_and_damaged_files(tmp_path):
    from minisnn.io import CheckpointError

    path = tmp_path / "state.npz"
    _augmented_run(path, epochs=2)
    with pytest.raises(CheckpointError, match=r"state\.npz.*epochs 2 \(now 3\)"):
        _augmented_run(path, epochs=3, resume=True)
    with pytest.raises(CheckpointError, match=r"seed 3 \(now 4\)"):
        _augmented_run(path, epochs=2, seed=4, resume=True)
    x, y = data()
    net = small_net()
    with pytest.raises(CheckpointError, match="data"):  # other training data
        fit(net, lambda a, b: ann_loss(net, a, b), (x + 1, y), epochs=2, batch_size=16, lr=0.01, seed=3,
            checkpoint=path, resume=True, rngs={"augment": np.random.default_rng(0)})
    with pytest.raises(CheckpointError, match="generators"):
        fit(net, lambda a, b: ann_loss(net, a, b), (x, y), epochs=2, batch_size=16, lr=0.01, seed=3,
            checkpoint=path, resume=True)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="state.npz"):
        _augmented_run(path, epochs=2, resume=True)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        fit(net, lambda a, b: ann_loss(net, a, b), (x, y), resume=True)
    with pytest.raises(ValueError, match="epochs"):
        fit(net, lambda a, b: ann_loss(net, a, b), (x, y), epochs=-1)


def test_checkpoint_holds_the_adam_state_and_the_generators(tmp_path):
    from minisnn.train import read_fit_state

    path = tmp_path / "state.npz"
    net, _ = _augmented_run(path, epochs=2)
    arrays, meta = read_fit_state(path)
    assert meta["optimizer"]["type"] == "Adam" and meta["optimizer"]["scalars"][0]["step"] == 2 * 4
    assert {k.split("/")[0] for k in arrays} == {"model", "best", "optim"}
    assert arrays["optim/0/exp_avg"].shape == net.state_dict()["0.w"].shape
    assert meta["rng"]["bit_generator"] == "PCG64" and set(meta["rngs"]) == {"augment"}
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary file left behind
