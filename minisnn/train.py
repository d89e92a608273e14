"""The one training loop, the firing-rate regularizer and the ANN loss (LEVEL 3).

:func:`fit` trains anything that has ``parameters()``, ``state_dict()`` and
``load_state_dict()`` (a :class:`~minisnn.layers.Module` or a
:class:`~minisnn.hybrid.SpikingNet`) with a *step function* that builds the graph of one batch
and returns its loss: :func:`ann_loss` for ANN training, :func:`minisnn.hybrid.hybrid_loss` for
hybrid fine-tuning.  So ANN training and hybrid fine-tuning share one loop: seeded shuffling,
mini-batches, Adam, a validation metric each epoch, early stopping that restores the best
weights, callbacks, and a clean stop on a NaN/inf loss or gradient.

Crash safety: with ``checkpoint=PATH`` :func:`fit` writes, after every epoch and atomically
(:func:`minisnn.io.save_checkpoint`: a temporary file, then a rename), everything it needs to
continue: the current and the best weights, the optimizer's buffers and step counts, the state
of the shuffling generator and of any generator the step function draws from (``rngs``, e.g. the
augmentation's), the history, the early-stopping counter and the settings.  ``resume=True``
continues from that file: the remaining epochs then see exactly the batches, the augmentation and
the optimizer state an uninterrupted run would have seen, so the result is bit for bit the same
(on the same machine and thread count).  A run killed mid-epoch repeats that epoch from its start.
A finished (or early-stopped) run's checkpoint just restores its best weights and history.

Firing-rate regularizer (:class:`RateRegularizer`): per chosen neuron layer
``weight * mean((rate_Hz - target)^2)`` (``normalized=False``, as NengoDL users write it), or
``weight * mean(((rate_Hz - target) / target)^2)`` (``normalized=True``).  **Apps should use
the normalized form**: on Hz^2 the paper's weight 0.01 with a 250 Hz target starts at
``0.01 * 250^2 = 625`` per silent layer and dwarfs an MSE of ~0.01 on [0, 1] boxes; normalized,
the same weight starts at 0.01 per layer and acts as a gentle pull.  The Hz^2 form with weight
``w`` equals the normalized form with weight ``w * target^2``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import functional as F
from .autodiff import Tensor
from .io import CheckpointError, load_checkpoint, save_checkpoint
from .ops.scratch import release as release_buffers
from .optim import Adam
from .parallel import Single, digest

__all__ = ["forward_with_activations", "RateRegularizer", "ann_loss", "fit", "Callback", "TrainingStopped",
           "FIT_STATE_KIND", "read_fit_state", "Part"]


def forward_with_activations(net, x):
    """Run a Sequential: ``(output, {layer name: output Tensor of each Neurons layer})``
    (:meth:`~minisnn.layers.Sequential.forward_with_activations`).

    Names are the layer indices as strings (the keys of ``SimResult.layer_means``).
    """
    return net.forward_with_activations(x)


class RateRegularizer:
    """Pull the firing rates of neuron layers towards a target.

    ``loss = sum over layers of weight * mean((rate_Hz - target)^2)``, or with
    ``normalized=True`` ``weight * mean(((rate_Hz - target) / target)^2)`` (recommended, see
    the module docstring).  Rates come from :meth:`Neurons.rate_hz` of the layer outputs: the
    rate neurons' outputs in ANN training, the measured (replayed) SNN outputs in hybrid
    training, where the gradient flows through the rate derivative.

    Parameters
    ----------
    target : Hz (e.g. 250)
    weight : per layer (a float, or ``{layer name: weight}``)
    layers : layer names (indices as strings) to regularize; None = every neuron layer given
    normalized : divide the rate error by the target
    """

    def __init__(self, target: float = 250.0, weight=0.01, layers=None, normalized: bool = True):
        self.target = float(target)
        if not np.isfinite(self.target) or self.target <= 0:
            raise ValueError(f"RateRegularizer: target must be > 0 Hz, got {target}")
        self.weight = weight
        self.layers = None if layers is None else [str(k) for k in layers]
        self.normalized = bool(normalized)

    def _weight(self, name):
        return float(self.weight[name]) if isinstance(self.weight, dict) else float(self.weight)

    def __call__(self, net, acts: dict) -> Tensor:
        names = list(acts) if self.layers is None else self.layers
        total = None
        for name in names:
            if name not in acts:
                raise ValueError(f"RateRegularizer: no activations for layer {name!r} (have {list(acts)})")
            layer = net[int(name)]
            rate = layer.rate_hz(acts[name])
            err = rate - self.target
            if self.normalized:
                err = err * (1.0 / self.target)
            term = (err * err).mean() * self._weight(name)
            total = term if total is None else total + term
        return total if total is not None else Tensor(0.0)


def ann_loss(net, x, y, loss_fn=F.mse_loss, *, regularizer=None):
    """Graph of one ANN batch: ``(loss Tensor, info)`` with ``task_loss`` and ``reg_loss``."""
    out, acts = forward_with_activations(net, x)
    task = loss_fn(out, y)
    loss, reg_value = task, 0.0
    if regularizer is not None:
        reg = regularizer(net, acts)
        reg_value = float(reg.item())
        loss = loss + reg
    return loss, {"task_loss": float(task.item()), "reg_loss": reg_value, "readout": out.data}


class Callback:
    """Hooks :func:`fit` calls; override what you need."""

    def on_batch_end(self, info: dict) -> None:  # epoch, batch, n_batches, loss, task_loss, reg_loss
        pass

    def on_epoch_end(self, history: dict) -> None:
        pass


class TrainingStopped(RuntimeError):
    """Raised by :func:`fit` with ``raise_on_nan=True`` when the loss becomes NaN or inf."""


def _which(best_epoch) -> str:
    return "the initial weights" if best_epoch is None or best_epoch < 0 else f"epoch {best_epoch}"


def _finite_grads(params) -> bool:
    return all(p.grad is None or bool(np.isfinite(p.grad).all()) for p in params)


# ----------------------------------------------------------------------------- checkpoints of fit

#: ``meta["kind"]`` of the checkpoints :func:`fit` writes (to tell them from model checkpoints).
FIT_STATE_KIND = "fit-state"
_FLOAT_LISTS = ("loss", "task_loss", "reg_loss", "val", "time")


def _fingerprint(*arrays) -> str:
    """A short hash of the training data (shape, dtype and bytes), so a resume on other data is refused."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        try:
            h.update(memoryview(a).cast("B"))
        except (TypeError, ValueError):  # a dtype the buffer protocol does not export
            h.update(a.tobytes())
    return h.hexdigest()


def _save_fit_state(path, model, best_state, opt, rng, rngs, history, since_best, settings) -> None:
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    state.update({f"best/{k}": v for k, v in best_state.items()})
    osd = opt.state_dict()
    scalars = []
    for i, buffers in enumerate(osd["state"]):
        scalars.append({})
        for k, v in buffers.items():
            if isinstance(v, np.ndarray):
                state[f"optim/{i}/{k}"] = v
            else:
                scalars[i][k] = v
    for k in _FLOAT_LISTS:
        state[f"history/{k}"] = np.asarray(history[k], np.float64)
    rest = {k: v for k, v in history.items() if k not in _FLOAT_LISTS}
    if "val_initial" in rest:  # may be NaN: keep it exact as an array
        state["history/val_initial"] = np.asarray(rest.pop("val_initial"), np.float64)
    meta = {"kind": FIT_STATE_KIND, "settings": settings, "since_best": since_best, "history": rest,
            "optimizer": {"type": type(opt).__name__, "hyper": osd["hyper"], "scalars": scalars},
            "rng": rng.bit_generator.state,
            "rngs": {name: g.bit_generator.state for name, g in (rngs or {}).items()}}
    save_checkpoint(path, state, meta)


def read_fit_state(path) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a checkpoint written by :func:`fit` (``meta["history"]`` is the
    history up to its last epoch).  Raises :class:`~minisnn.io.CheckpointError` (one line, naming
    the file) when it is missing, damaged or not a fit checkpoint."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != FIT_STATE_KIND:
        raise CheckpointError(f"{path}: not a training-state checkpoint (kind {meta.get('kind')!r})")
    try:
        history = dict(meta["history"])
        for k in _FLOAT_LISTS:
            history[k] = arrays.pop(f"history/{k}").tolist()
        if "history/val_initial" in arrays:
            history["val_initial"] = float(arrays.pop("history/val_initial"))
        missing = [k for k in ("settings", "since_best", "optimizer", "rng") if k not in meta]
        if missing:
            raise KeyError(missing[0])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: incomplete training-state checkpoint (no {e})") from None
    meta = dict(meta, history=history)
    return arrays, meta


def _restore_fit_state(path, model, opt, rng, rngs, settings, comm):
    """Load a :func:`fit` checkpoint into ``model``, ``opt`` and the generators; returns
    ``(best_state, history, since_best)``.  Under several processes rank 0 reads the file and
    sends what it read to the others."""
    arrays, meta = comm.bcast(read_fit_state(path) if comm.rank == 0 else None)
    saved = meta.get("settings", {})
    diff = [f"{k} {saved.get(k)!r} (now {v!r})" for k, v in settings.items() if saved.get(k) != v]
    if diff:
        raise CheckpointError(f"{path}: saved by a run with other settings: {', '.join(diff)}; "
                              f"resume with the same settings or start over")
    names = set((rngs or {}).keys())
    if set(meta.get("rngs", {})) != names:
        raise CheckpointError(f"{path}: saved with the generators {sorted(meta.get('rngs', {}))}, "
                              f"this run has {sorted(names)}")
    try:
        model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
        best = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
        o = meta["optimizer"]
        if o["type"] != type(opt).__name__:
            raise ValueError(f"optimizer {o['type']}, this run uses {type(opt).__name__}")
        buffers = [dict(s) for s in o["scalars"]]
        for k, v in arrays.items():
            if k.startswith("optim/"):
                _, i, name = k.split("/", 2)
                buffers[int(i)][name] = v
        opt.load_state_dict({"hyper": o["hyper"], "state": buffers})
        rng.bit_generator.state = meta["rng"]
        for name, g in (rngs or {}).items():
            g.bit_generator.state = meta["rngs"][name]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: does not fit this model and optimizer ({e})") from None
    return best, meta["history"], int(meta["since_best"])


def _then_release_buffers(fn):
    """Run ``fn``, then drop this thread's scratch and recycled buffers: a training run's
    column matrices (gigabytes for LocNet at 200x300) are of no use to what follows it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            release_buffers()

    return wrapper


@_then_release_buffers
def fit(
    model,
    step_fn,
    train_data,
    *,
    val_fn=None,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    optimizer=None,
    seed: int = 0,
    patience: int | None = None,
    goal: str = "min",
    callbacks=(),
    raise_on_nan: bool = False,
    verbose: bool = False,
    validate_first: bool = False,
    checkpoint=None,
    resume: bool = False,
    rngs: dict | None = None,
    comm=None,
) -> dict:
    """Train ``model`` with ``step_fn`` on ``train_data``; returns the history dict.

    Parameters
    ----------
    model : has ``parameters()``, ``state_dict()``, ``load_state_dict()`` (Module or SpikingNet)
    step_fn : ``step_fn(xb, yb) -> loss Tensor`` or ``(loss Tensor, info dict)``; builds the
        graph of one batch (e.g. ``lambda x, y: ann_loss(net, x, y)`` or
        ``lambda x, y: hybrid_loss(snet, x, y, mse_loss)``)
    train_data : ``(X, Y)`` arrays with the samples on axis 0
    val_fn : ``val_fn() -> float``, the validation metric after each epoch (None: the mean
        training loss is used)
    epochs, batch_size, lr, seed : the loop; shuffling uses ``default_rng(seed)``
    optimizer : an Optimizer over ``model.parameters()`` (default ``Adam(lr)``)
    patience : stop once this many epochs in a row bring no improvement (None: never), as
        Keras' EarlyStopping; the best epoch's weights are restored at the end in any case
    goal : ``"min"`` (loss-like metric) or ``"max"`` (IoU, Dice): which way the validation metric improves
    callbacks : objects with ``on_batch_end(info)`` / ``on_epoch_end(history)``
    raise_on_nan : raise :class:`TrainingStopped` instead of returning on a NaN/inf loss
    validate_first : score the initial weights with ``val_fn`` before training and let them
        compete with the epochs: fine-tuning (the hybrid step) then keeps the starting point
        unless an epoch beats it (``best_epoch`` is -1 for the initial weights)
    checkpoint : a file path: after every epoch (and when training stops) the whole training
        state is written there atomically (see the module docstring)
    resume : continue from ``checkpoint`` if that file exists (otherwise start as usual).  The
        settings (epochs, batch size, seed, patience, goal, the data's fingerprint, ...) must be
        those of the run that wrote it, or :class:`~minisnn.io.CheckpointError` is raised
    rngs : ``{name: numpy Generator}`` that ``step_fn`` draws from (augmentation): their states
        are saved in and restored from the checkpoint with the shuffling generator's
    comm : a communicator of :mod:`minisnn.parallel` (None: one process).  With more than one
        process every process runs this same call on the same data and takes its share of each
        global batch of ``batch_size`` (:meth:`~minisnn.parallel.MPIComm.part`); ``step_fn`` is
        then called as ``step_fn(xb, yb, part=Part(start, stop, total))`` with rows
        ``start:stop`` of the global batch, also when that share is empty (it must draw its
        random numbers for the whole global batch, take its rows' share, and return None when
        it has no rows).  Between backward and the optimizer step the gradients, weighted by
        each process's share, and the loss terms are summed over the processes in ONE
        allreduce of a flat buffer, so every process takes the same step on the global batch's
        mean loss and Adam's state stays the same everywhere; a checksum of the parameters and
        the optimizer state is compared after every epoch (and of the initial parameters and
        the data at the start): a difference raises :class:`~minisnn.parallel.RanksDiverged`.
        Rank 0 alone writes the checkpoint; with ``resume`` it reads it and sends it to the others

    Returns
    -------
    history : dict with lists ``loss``, ``task_loss``, ``reg_loss``, ``val``, ``time`` (one per
        epoch) and ``best_epoch``, ``best_val``, ``epochs_run``, ``stopped`` (None, "early
        stopping" or "non-finite loss"), ``message``; ``resumed_from`` (the epoch count of the
        checkpoint it continued from) when it resumed
    """
    X, Y = train_data
    n = _check_fit_args(X, Y, epochs, batch_size, goal, resume, checkpoint)
    comm = Single() if comm is None else comm
    params = list(model.parameters())
    opt = optimizer if optimizer is not None else Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    settings = data_print = None
    if checkpoint is not None or comm.size > 1:
        data_print = _fingerprint(X, Y)
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        settings = {"epochs": int(epochs), "batch_size": int(batch_size), "seed": _jsonable_seed(seed),
                    "patience": patience, "goal": goal, "validate_first": bool(validate_first),
                    "n": int(n), "data": data_print,
                    "parameters": [list(p.shape) for p in params]}
    verbose = verbose and comm.rank == 0
    if resume and comm.bcast(checkpoint.exists()):  # rank 0's file decides
        run = _FitProgress(*_restore_fit_state(checkpoint, model, opt, rng, rngs, settings, comm))
        run.history["resumed_from"] = run.history["epochs_run"]
        if verbose:
            print(f"resumed from {checkpoint} after epoch {run.history['epochs_run'] - 1}")
    else:
        if comm.size > 1:  # every process must start from the same weights, on the same data
            comm.check_same(digest(*(p.data for p in params)) + data_print,
                            "the initial parameters and the training data")
        run = _FitProgress.start(model, val_fn if validate_first else None)

    def save():
        if checkpoint is not None and comm.rank == 0:
            _save_fit_state(checkpoint, model, run.best_state, opt, rng, rngs, run.history, run.since_best,
                            settings)

    history = run.history
    if history["stopped"] is None:
        for epoch in range(history["epochs_run"], epochs):
            t0 = time.perf_counter()
            sums, failure = _train_epoch(epoch, step_fn, X, Y, rng.permutation(n), batch_size, opt, params,
                                         callbacks, comm)
            if comm.size > 1:  # a drift between the processes is an error, found within the epoch it began
                comm.check_same(_state_digest(params, opt), f"the parameters and optimizer state after epoch {epoch}")
            if failure is not None:  # a non-finite loss or gradient: back to the last good weights
                model.load_state_dict(run.best_state)
                history.update(stopped="non-finite loss", message=(
                    f"training stopped: {failure}; restored the last good weights "
                    f"({_which(history['best_epoch'])})"))
                opt.zero_grad()
                save()
                if verbose:
                    print(history["message"])
                break
            val = float(val_fn()) if val_fn is not None else sums["loss"] / n
            stop = run.end_epoch(epoch, {k: v / n for k, v in sums.items()}, val, time.perf_counter() - t0,
                                 model, goal, patience)
            save()  # the end of every epoch: what a resumed run continues from
            if verbose:
                print(f"epoch {epoch}: loss {history['loss'][-1]:.6g} val {val:.6g}")
            for cb in callbacks:
                if hasattr(cb, "on_epoch_end"):
                    cb.on_epoch_end(history)
            if stop:
                break
        if history["epochs_run"] == 0 and history["stopped"] is None:
            save()  # epochs=0: a checkpoint all the same, so a resumed run knows this phase is done
    model.load_state_dict(run.best_state)
    if history["stopped"] == "non-finite loss" and raise_on_nan:
        raise TrainingStopped(history["message"])
    if not history["message"]:
        history["message"] = (f"finished {history['epochs_run']} epochs; restored {_which(history['best_epoch'])}"
                              if history["best_epoch"] is not None else "finished")
    return history


def _check_fit_args(X, Y, epochs, batch_size, goal, resume, checkpoint) -> int:
    """The number of training samples, after checking :func:`fit`'s arguments (ValueError)."""
    if goal not in ("min", "max"):
        raise ValueError(f"fit: goal must be 'min' or 'max', got {goal!r}")
    n = len(X)
    if n == 0 or len(Y) != n:
        raise ValueError(f"fit: train_data has {n} inputs and {len(Y)} targets")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(epochs, (int, np.integer)) and epochs >= 0):
        raise ValueError(f"fit: epochs must be an integer >= 0, got {epochs!r}")
    if resume and checkpoint is None:
        raise ValueError("fit: resume=True needs a checkpoint path")
    return n


@dataclass(frozen=True)
class Part:
    """Rows ``start:stop`` of a global batch of ``total`` inputs: the share of one process
    among several, passed to a step function as ``part=`` (see :func:`fit`'s ``comm``)."""

    start: int
    stop: int
    total: int


def _train_epoch(epoch, step_fn, X, Y, order, batch_size, opt, params, callbacks, comm=None):
    """One pass over ``X[order]`` in batches: ``(sums, None)`` with the sample-weighted sums of
    ``loss``, ``task_loss`` and ``reg_loss``, or ``(None, what)`` at the first batch whose loss
    or gradient is not finite (no optimizer step is taken with it).  With a communicator of
    several processes each computes its share of every batch (:class:`_GradientSum`)."""
    sums = {"loss": 0.0, "task_loss": 0.0, "reg_loss": 0.0}
    n_batches = (len(order) + batch_size - 1) // batch_size
    summed = _GradientSum(comm, params) if comm is not None and comm.size > 1 else None
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        opt.zero_grad()
        if summed is not None:
            value, task, reg = summed.step(step_fn, X, Y, idx)
        else:
            result = step_fn(X[idx], Y[idx])
            loss, info = result if isinstance(result, tuple) else (result, {})
            value = float(loss.item())
            if loss.requires_grad and math.isfinite(value):
                loss.backward()
            task, reg = info.get("task_loss", value), info.get("reg_loss", 0.0)
        if not math.isfinite(value) or not _finite_grads(params):
            what = f"loss {value}" if not math.isfinite(value) else "a non-finite gradient"
            return None, f"{what} at epoch {epoch}, batch {b}"
        opt.step()
        terms = {"loss": value, "task_loss": task, "reg_loss": reg}
        for k, v in terms.items():
            sums[k] += v * len(idx)
        for cb in callbacks:
            if hasattr(cb, "on_batch_end"):
                cb.on_batch_end({"epoch": epoch, "batch": b, "n_batches": n_batches, **terms})
    return sums, None


class _GradientSum:
    """The data-parallel step: this process's share of the global batch forward and backward,
    then ONE allreduce of a flat buffer holding every parameter's gradient weighted by the
    share (``rows / total``: the global batch's mean loss is the shares' weighted sum), a flag
    per parameter (did any process get a gradient for it) and the loss terms.  The summed
    gradients become the parameters' ``.grad`` (views of the buffer, read by the optimizer
    step that follows)."""

    def __init__(self, comm, params):
        self.comm, self.params = comm, params
        sizes = [int(p.data.size) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])
        dtype = np.result_type(*(p.data.dtype for p in params)) if params else np.float32
        self.buf = np.empty(self.n + len(params) + 3, dtype)  # gradients, flags, (loss, task, reg)

    def step(self, step_fn, X, Y, idx) -> tuple:
        lo, hi = self.comm.part(len(idx))
        rows = idx[lo:hi]
        result = step_fn(X[rows], Y[rows], part=Part(lo, hi, len(idx)))
        weight = (hi - lo) / len(idx)
        buf, n, flags = self.buf, self.n, self.buf[self.n : self.n + len(self.params)]
        buf[:] = 0
        if result is not None:
            loss, info = result if isinstance(result, tuple) else (result, {})
            value = float(loss.item())
            if loss.requires_grad and math.isfinite(value):
                loss.backward()
            for i, p in enumerate(self.params):
                if p.grad is not None:
                    np.multiply(p.grad.reshape(-1), weight, out=buf[self.offsets[i] : self.offsets[i + 1]],
                                casting="unsafe")
                    flags[i] = 1
            buf[-3:] = [value * weight, info.get("task_loss", value) * weight, info.get("reg_loss", 0.0) * weight]
        self.comm.allreduce(buf)
        for i, p in enumerate(self.params):
            p.grad = buf[self.offsets[i] : self.offsets[i + 1]].reshape(p.data.shape) if flags[i] > 0 else None
        return tuple(float(v) for v in buf[n + len(self.params) :])


def _state_digest(params, opt) -> str:
    """The exact checksum of the parameters and the optimizer's buffers and step counts."""
    arrays = [p.data for p in params]
    for s in opt.state:
        arrays += [np.asarray(s[k]) for k in sorted(s)]
    return digest(*arrays)


@dataclass
class _FitProgress:
    """What :func:`fit` carries from epoch to epoch, and a checkpoint saves: the history (which
    is also the result), the best weights so far and the epochs since they were found."""

    best_state: dict
    history: dict
    since_best: int = 0

    @classmethod
    def start(cls, model, val_fn=None):
        """A fresh run; with ``val_fn`` the initial weights are scored and compete as epoch -1."""
        history = {"loss": [], "task_loss": [], "reg_loss": [], "val": [], "time": [],
                   "best_epoch": None, "best_val": None, "epochs_run": 0, "stopped": None, "message": ""}
        if val_fn is not None:
            history["val_initial"] = float(val_fn())
            if math.isfinite(history["val_initial"]):
                history["best_val"], history["best_epoch"] = history["val_initial"], -1
        return cls(model.state_dict(), history)  # the initial weights are the fallback

    def end_epoch(self, epoch, means: dict, val: float, seconds: float, model, goal, patience) -> bool:
        """Record an epoch, keep the weights if ``val`` is the best yet; True if training stops
        (``patience`` epochs in a row without improvement: Keras' EarlyStopping)."""
        h = self.history
        for k, v in means.items():
            h[k].append(v)
        h["val"].append(val)
        h["time"].append(seconds)
        h["epochs_run"] = epoch + 1
        improved = h["best_val"] is None or (val < h["best_val"] if goal == "min" else val > h["best_val"])
        if math.isfinite(val) and improved:
            h["best_val"], h["best_epoch"] = val, epoch
            self.best_state = model.state_dict()
            self.since_best = 0
        else:
            self.since_best += 1
        if patience is None or self.since_best < patience:
            return False
        h["stopped"] = "early stopping"
        h["message"] = (f"early stopping at epoch {epoch}: no improvement for {self.since_best} epochs; "
                        f"restored {_which(h['best_epoch'])} (val {h['best_val']:.6g})")
        return True


def _jsonable_seed(seed):
    """The seed as it is stored in a checkpoint's settings (an int, or a list of ints)."""
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    try:
        return [int(s) for s in seed]
    except TypeError:
        return repr(seed)
