"""The task-independent parts of the apps (minisnn.apps.common)."""

import numpy as np

import minisnn as ms
from minisnn.apps import common
from minisnn.hybrid import convert
from minisnn.layers import Neurons
from minisnn.neurons import RectifiedLinear


def tiny_snet():
    rng = np.random.default_rng(0)
    net = ms.Sequential(ms.Dense(5, 8, rng=rng, dtype=np.float64), Neurons(RectifiedLinear(), 200.0),
                        ms.Dense(8, 6, rng=rng, dtype=np.float64), Neurons(RectifiedLinear(), 200.0),
                        ms.Dense(6, 2, rng=rng, dtype=np.float64))
    return convert(net, synapse=0.005, seed=1)


def test_metric_vs_steps_reuses_runs_and_equals_one_run_per_T(monkeypatch):
    snet = tiny_snet()
    x = np.random.default_rng(1).uniform(0, 1, (7, 5))
    measure = lambda out: float(out.mean())  # noqa: E731
    steps = (3, 8, 12, 20)
    reference = [measure(common.run_snn(snet, x, T, batch=3).outputs) for T in steps]

    ev = common.run_snn(snet, x, 12, batch=4, also_at=steps)  # covers 3, 8 and 12
    assert sorted(ev.outputs_at) == [3, 8, 12]
    calls = []
    real = common.run_snn
    monkeypatch.setattr(common, "run_snn", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    curve = common.metric_vs_steps(steps, {"m": snet}, x, measure, batch=2, evals={"m": ev})
    assert calls == [20], "only the T the evaluation did not cover needs a run"
    assert curve["steps"] == list(steps)
    np.testing.assert_allclose(curve["m"], reference, rtol=1e-9)
    assert len(set(np.round(reference, 12))) > 1, "the metric must change with T to prove anything"
