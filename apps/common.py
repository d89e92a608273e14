"""What every application shares: spiking evaluation in batches, the energy estimate, the
epoch progress bar of the training loop, and a plain-text table.

The task modules (:mod:`minisnn.apps.loc`, ...) add their data, metric and figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..hybrid import SpikingNet
from ..io import atomic_write_json
from ..layers import Sequential
from ..neurons import check_precision
from ..parallel import world
from ..simulate import ann_macs
from ..train import fit
from .progress import Bar

#: Random streams of a run besides the ones seeded with ``seed`` itself (the split, the weights,
#: the ANN's shuffling): each is ``np.random.default_rng([seed, STREAM])``, so changing how one
#: is used leaves the others' numbers alone.
STREAM_FLIP = 17             # LocNet: which images of a batch are mirrored
STREAM_VALIDATION = 3        # LocNet: which training images are held out for validation
STREAM_HYBRID_SLICES = 5     # CAE: the share of training slices a hybrid epoch sees
STREAM_SUBJECTS = 9          # CAE: the seeded subset of subjects (--subjects)
STREAM_HYBRID_SHUFFLE = 11   # both apps: the order of the training batches in the hybrid phase
STREAM_HYBRID_FLIP = 19      # LocNet: which images of a hybrid batch are mirrored

#: Energy per operation, picojoules, for the estimates in the tables: 45 nm CMOS, 32-bit
#: floating point, add 0.9 pJ and multiply 3.7 pJ (M. Horowitz, "Computing's energy problem
#: (and what we can do about it)", ISSCC 2014 - the figures most SNN papers use).  Every cost
#: below is a count of those two operations:
#:
#: * ``mac`` (ANN, and the SNN's first layer on the static input): multiply + add.
#: * ``synop`` (SNN): a spike adds its weight to one target: one add.
#: * ``neuron_update`` (SNN, every neuron, every step): the LIF's ``ref -= dt``,
#:   ``v += (J - v) * e`` and ``v > 1`` are four adds and a multiply; the spiking rectified
#:   linear's ``v += max(J, 0) * dt``, ``v >= 1``, ``v -= n`` count the same.  The reset and
#:   Nengo's sub-step spike time (once per spike, not per step) are not charged.
#: * ``filter_update`` (SNN, every filtered current, every step): the Lowpass
#:   ``y = a * y + (1 - a) * u`` written as ``y += (1 - a) * (u - y)``, two adds and a
#:   multiply.  The filter is linear, so a chip routes spikes as synaptic adds and filters each
#:   postsynaptic current once per step: the inputs of every neuron layer but the first (whose
#:   current is constant) and the readout.
#: * ``activation`` (ANN, every neuron, once): one comparison, what a ReLU costs - the least
#:   any activation costs, so the comparison never flatters the SNN.
#:
#: The literature's usual count (``energy_vs_ann_synaptic`` in the results) charges the SNN for
#: its synaptic operations and first-layer MACs only and the ANN for its MACs only; KerasSpiking's
#: ``ModelEnergy`` and Lemaire et al. (2022) also charge the neuron updates, as done here.
ENERGY_PJ = {"mac": 4.6, "synop": 0.9, "neuron_update": 7.3, "filter_update": 5.5, "activation": 0.9,
             "source": "Horowitz, ISSCC 2014, 45 nm, 32-bit float: add 0.9 pJ, multiply 3.7 pJ"}


@dataclass
class SpikingEval:
    """What a spiking evaluation measured, over all inputs."""

    outputs: np.ndarray    # the readouts, (N, ...)
    rates: dict            # {layer name: Hz}
    mean_rate: float       # Hz, over all neurons of all spiking layers
    synops: float          # per input, over the whole presentation
    first_layer_macs: float
    steps: int
    sizes: dict = field(default_factory=dict)      # {layer name: neurons per input}
    filtered: int = 0                               # currents filtered per input and step
    outputs_at: dict = field(default_factory=dict)  # {T: raw readouts of a T-step run}, T = steps too
    synops_at: dict = field(default_factory=dict)   # {T: synaptic operations per input of a T-step run}
    mean_rate_at: dict = field(default_factory=dict)  # {T: mean_rate of a T-step run}

    def at(self, T: int) -> "SpikingEval":
        """What a presentation of ``T`` steps (one of ``outputs_at``) measured: its raw readouts,
        its mean rate, its synaptic operations and its length (the per-layer ``rates`` stay
        those of the whole run)."""
        return dataclasses.replace(self, outputs=self.outputs_at[T], mean_rate=self.mean_rate_at[T],
                                   synops=self.synops_at[T], steps=T)


def _steps_below(steps, T) -> list:
    return sorted({int(t) for t in steps if t < T})


def run_snn(snet: SpikingNet, x: np.ndarray, steps: int, batch: int = 16, *,
            prepare: Callable[[np.ndarray], np.ndarray] | None = None, label: str = "SNN",
            quiet: bool = True, also_at=()) -> SpikingEval:
    """Simulate ``snet`` on ``x`` for ``steps`` steps, ``batch`` inputs at a time; ``prepare``
    maps a slice of ``x`` to the network's input (e.g. standardization).  The readouts of the
    shorter presentations ``also_at`` come from the same run (``SpikingEval.outputs_at``).

    Under several MPI processes (:func:`minisnn.parallel.world`) each simulates its share of
    the inputs (whole batches where there are enough) and every process gets everything,
    added up in the order one process adds it."""
    also_at = _steps_below(also_at, steps)
    n, comm = len(x), world()
    lo, hi = comm.part(n, batch)
    batches = []  # (inputs, SimResult) per batch, in input order
    with Bar(batches_of(hi - lo, batch), label, unit="batches", quiet=quiet) as bar:
        for i in range(lo, hi, batch):
            xb = x[i : min(i + batch, hi)]
            xb = xb if prepare is None else prepare(xb)
            res = snet.run(xb, steps, also_at=also_at, first_index=i)  # same spikes for any batch size
            batches.append((len(xb), res))
            bar.update(1, rate=f"{res.mean_rate:.0f} Hz")
    if comm.size > 1:
        batches = [b for share in comm.allgather([(m, _sim_summary(r, also_at)) for m, r in batches])
                   for b in share]
    outputs = []
    at: dict = {T: [] for T in also_at}
    synops_at = {T: 0.0 for T in also_at}
    spikes_at = {T: 0.0 for T in also_at}
    counts, synops, sizes = {}, 0.0, {}
    for m, res in batches:
        outputs.append(res.readout)
        for T in also_at:
            at[T].append(res.readouts_at[T])
            synops_at[T] += res.synops_at[T] * m
            spikes_at[T] += res.spikes_at[T] * m
        sizes = res.sizes
        for k, r in res.rates.items():
            counts[k] = counts.get(k, 0.0) + r * m
        synops += res.synops["total"] * m
    rates = {k: v / n for k, v in counts.items()}
    total = sum(sizes.values())
    mean_rate = sum(rates[k] * sizes[k] for k in sizes) / total if total else 0.0
    outputs = np.concatenate(outputs)
    outputs_at = {T: np.concatenate(v) for T, v in at.items()}
    outputs_at[steps] = outputs
    synops_at = {T: v / n for T, v in synops_at.items()}
    synops_at[steps] = synops / n
    mean_rate_at = {T: v / (n * total * T * snet.dt) if total else 0.0 for T, v in spikes_at.items()}
    mean_rate_at[steps] = float(mean_rate)
    return SpikingEval(outputs, rates, float(mean_rate), synops / n, first_layer_macs(snet.net, x.shape[1:]),
                       steps, sizes, filtered_currents(snet, sizes, outputs.shape[1:]), outputs_at, synops_at,
                       mean_rate_at)


def _sim_summary(res, also_at):
    """What :func:`run_snn` keeps of a batch's SimResult: the part sent between processes."""
    from types import SimpleNamespace

    return SimpleNamespace(readout=res.readout, readouts_at={T: res.readouts_at[T] for T in also_at},
                           synops_at={T: res.synops_at[T] for T in also_at},
                           spikes_at={T: res.spikes_at[T] for T in also_at}, sizes=res.sizes, rates=res.rates,
                           synops={"total": res.synops["total"]})


def filtered_currents(snet: SpikingNet, sizes: dict, output_shape) -> int:
    """Currents the synapses filter per input and step (see :data:`ENERGY_PJ`): the inputs of
    every neuron layer after the first, and the readout's outputs; none without a synapse."""
    if not snet.synapse or not sizes:
        return 0
    first = next(iter(sizes.values()))
    return int(sum(sizes.values()) - first + math.prod(output_shape))


def first_layer_macs(net: Sequential, shape) -> float:
    """MACs of the first layer: the SNN computes it once per input on the static input, as an
    ANN would, and it then drives the first spiking layer with a constant current."""
    return ann_macs(Sequential(net[0]), shape)


def energy_fields(macs: float, neurons: int, ev: SpikingEval | None = None) -> dict:
    """Table columns for the energy estimate (:data:`ENERGY_PJ`), per input: the ANN's (``ev``
    None; ``macs`` multiply-accumulates and ``neurons`` activations) or an SNN's (``ev``), with
    ``energy_vs_ann`` the complete ratio and ``energy_vs_ann_synaptic`` the literature's."""
    pj = ENERGY_PJ
    ann_pj = macs * pj["mac"] + neurons * pj["activation"]
    ann_synaptic_pj = macs * pj["mac"]
    if ev is None:
        return {"synops": None, "energy_uj": ann_pj * 1e-6, "energy_vs_ann": 1.0,
                "energy_vs_ann_synaptic": 1.0, "macs": macs,
                "energy_parts_uj": {"macs": ann_synaptic_pj * 1e-6, "activations": neurons * pj["activation"] * 1e-6}}
    parts = {"first_layer_macs": ev.first_layer_macs * pj["mac"], "synops": ev.synops * pj["synop"],
             "neuron_updates": ev.steps * sum(ev.sizes.values()) * pj["neuron_update"],
             "filter_updates": ev.steps * ev.filtered * pj["filter_update"]}
    total = sum(parts.values())
    synaptic = parts["first_layer_macs"] + parts["synops"]
    return {"rate_hz": ev.mean_rate, "synops": ev.synops, "energy_uj": total * 1e-6, "steps": ev.steps,
            "energy_vs_ann": total / ann_pj if ann_pj else None,
            "energy_vs_ann_synaptic": synaptic / ann_synaptic_pj if ann_synaptic_pj else None,
            "energy_parts_uj": {k: v * 1e-6 for k, v in parts.items()}}


#: A conversion loss below this (in the app's metric) is within the noise of a small test split:
#: the recovered fraction is not reported for it
MIN_LOSS_TO_RECOVER = 0.02


def recovery(ann: float, converted: float, hybrid: float, steps: int) -> dict:
    """How much of the conversion loss (ANN minus converted SNN, at ``steps``) the hybrid
    fine-tuning won back; the fraction is None when the loss is below :data:`MIN_LOSS_TO_RECOVER`."""
    loss = ann - converted
    return {"steps": steps, "conversion_loss": loss,
            "recovered_fraction": (hybrid - converted) / loss if loss >= MIN_LOSS_TO_RECOVER else None}


def snn_rows(row: Callable, macs: float, neurons: int, metric: str, ann: dict, long: tuple, short: dict | None
             ) -> tuple[list, dict]:
    """The SNN rows of a results table and the :func:`recovery` at the operating point.

    ``row(model, scores, macs, neurons, ev)`` makes one row; ``long = (T, {"converted": (ev,
    scores), "hybrid": (ev, scores)})`` are the long evaluations, ``short`` the same at the
    short T (or None); ``ann`` the ANN's scores, ``metric`` the scores' key of the metric."""
    rows, runs = [], [long] + ([short] if short and short[1] else [])
    for T, evals in runs:
        rows += [row(f"{key} SNN (T={T})", sc, macs, neurons, ev) for key, (ev, sc) in evals.items()]
    T_op, op = runs[-1]
    return rows, recovery(ann[metric], op["converted"][1][metric], op["hybrid"][1][metric], T_op)


def short_evals(cfg, evals: dict, scores: Callable[[np.ndarray], dict]) -> dict:
    """``{name: (SpikingEval, scores)}`` of each long evaluation in ``evals`` read at the
    operating point ``cfg.steps_short`` (its first steps: no new simulation), scored by
    ``scores(raw readouts)``; empty when ``steps_short >= steps_eval``."""
    if cfg.steps_short >= cfg.steps_eval:
        return {}
    return {name: (ev.at(cfg.steps_short), scores(ev.outputs_at[cfg.steps_short])) for name, ev in evals.items()}


def target_line(target: dict) -> str:
    """``met (+0.2629)`` or ``MISSED (1.12x)``: a target of :func:`minisnn.apps.loc` results."""
    value = f"{target['value']:.2f}x" if target.get("unit") == "x" else f"{target['value']:+.4f}"
    return f"{'met' if target['met'] else 'MISSED'} ({value})"


def recovery_line(rec: dict, metric: str) -> str:
    """One sentence on :func:`recovery`'s result."""
    if rec["recovered_fraction"] is None:
        return (f"at T = {rec['steps']} conversion lost {rec['conversion_loss']:+.4f} {metric}, less than "
                f"{MIN_LOSS_TO_RECOVER}: nothing to recover")
    return (f"at T = {rec['steps']} hybrid fine-tuning recovered {rec['recovered_fraction']:.0%} of the "
            f"conversion loss ({rec['conversion_loss']:.4f} {metric})")


def sentence(text: str) -> str:
    """``text`` as a sentence: first letter upper case (the rest kept), a full stop."""
    return text[:1].upper() + text[1:] + "."


def energy_note(pj: dict) -> str:
    """The report's sentence on how the energy columns are counted (:data:`ENERGY_PJ`)."""
    return (f"Energy per input ({pj['source']}): the ANN pays {pj['mac']} pJ per MAC and {pj['activation']} pJ "
            f"per activation; an SNN pays its first layer's MACs (on the static input, once), {pj['synop']} pJ per "
            f"synaptic operation, {pj['neuron_update']} pJ per neuron update and {pj['filter_update']} pJ per "
            f"synaptic filter update, every step. 'vs ANN' is that complete ratio; 'vs ANN (syn. only)' is the "
            f"literature's usual one (synaptic operations and first-layer MACs against the ANN's MACs).")


def format_table(headers: list, rows: list) -> str:
    """Aligned plain text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_or_dash(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fmt_ratio(value) -> str:
    """An energy ratio as ``0.51x`` (``-`` for none)."""
    return "-" if value is None else f"{value:.2f}x"


class EpochBar:
    """A :func:`minisnn.train.fit` callback: one progress bar per epoch with the running loss,
    closed with the validation metric (and ``extra()`` fields, e.g. the SNN's rate)."""

    def __init__(self, label: str, epochs: int, n_batches: int, quiet: bool, metric: str = "val",
                 extra: Callable[[], dict] | None = None):
        self.label, self.epochs, self.n_batches, self.quiet = label, epochs, n_batches, quiet
        self.metric, self.extra, self.bar = metric, extra, None

    def on_batch_end(self, info):
        if self.bar is None:
            self.bar = Bar(self.n_batches, f"{self.label} epoch {info['epoch'] + 1}/{self.epochs}",
                           unit="batches", quiet=self.quiet)
        self.bar.update(1, loss=info["loss"])

    def on_epoch_end(self, history):
        if self.bar is not None:
            self.bar.info[self.metric] = history["val"][-1]
            if self.extra:
                self.bar.info.update(self.extra())
            self.bar.update(0)
            self.bar.close()
        self.bar = None


def batches_of(n: int, batch: int) -> int:
    return (n + batch - 1) // batch


class Config:
    """Mixin for an app's settings dataclass: plain-data round trip for results and checkpoints."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


#: The command-line option of each checked setting (the field name is added where it differs).
OPTION_NAMES = {"epochs": "--epochs", "hybrid_epochs": "--hybrid-epochs", "batch_size": "--batch-size",
                "steps_train": "--train-steps", "steps_eval": "--steps", "steps_short": "--short-steps",
                "eval_batch": "eval_batch",
                "lr": "--lr", "hybrid_lr": "--hybrid-lr", "hybrid_method": "--hybrid-method", "seed": "--seed"}


def _option(name: str) -> str:
    opt = OPTION_NAMES.get(name, name)
    return opt if opt.lstrip("-").replace("-", "_") == name else f"{opt} ({name})"


def make_config(presets: dict, preset: str, overrides: dict):
    """``presets[preset]`` with the non-None ``overrides``, checked: epochs >= 0, batch sizes and
    step counts >= 1 (integers), learning rates finite and > 0, seed >= 0 (errors name the
    command-line option)."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
    cfg = dataclasses.replace(presets[preset], **{k: v for k, v in overrides.items() if v is not None})
    for name in ("epochs", "hybrid_epochs", "batch_size", "steps_train", "steps_eval", "steps_short", "eval_batch",
                 "seed"):
        low = 0 if name in ("epochs", "hybrid_epochs", "seed") else 1
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_option(name)} must be an integer >= {low}, got {value!r}")
        if value < low:
            raise ValueError(f"{_option(name)} must be >= {low}, got {value}")
    for name in ("lr", "hybrid_lr"):
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{_option(name)} must be > 0, got {value}")
        if not math.isfinite(value):
            raise ValueError(f"{_option(name)} must be a finite number > 0, got {value}")
    check_precision(cfg.precision)
    if cfg.hybrid_method not in ("mean", "per-step"):
        raise ValueError(f"{_option('hybrid_method')} must be 'mean' or 'per-step', got {cfg.hybrid_method!r}")
    return cfg


# ----------------------------------------------------------------------------- the output folder and resuming

#: Sub-folder of ``--out`` with the training checkpoints and ``run.json``.
STATE_DIR = "state"
#: Files (relative to ``--out`` or a ``foldK/`` in it) that mark a run; ``--overwrite`` removes them.
RUN_FILES = ("results.json", "report.md", "ann.npz", "hybrid_snn.npz", "examples.png", "firing_rates.png",
             "training.png", "loss.png", "iou_vs_steps.png", "dice_vs_steps.png")


def _run_dirs(out: Path) -> list:
    """``out`` and its ``foldK/`` sub-folders (k-fold runs)."""
    dirs = [out]
    if out.is_dir():
        dirs += sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith("fold") and p.name[4:].isdigit())
    return dirs


def existing_run_files(out) -> list:
    """The files in ``out`` (and its ``foldK/``) that belong to an earlier run, relative to ``out``."""
    out = Path(out)
    found = []
    for d in _run_dirs(out):
        names = ([d / n for n in RUN_FILES] + sorted((d / STATE_DIR).glob("*"))
                 + sorted((d / "predictions").glob("*.nii.gz")))
        found += [p.relative_to(out).as_posix() for p in names if p.is_file()]
    return found


#: Held (``flock``) by a running ``minisnn-train`` in its ``--out``, so a second run there is refused.
LOCK_FILE = ".minisnn-train.lock"


@contextmanager
def claim_out(out, *, overwrite: bool = False, resume: bool = False):
    """:func:`prepare_out`, then hold ``out``'s lock for the ``with`` body: a second
    ``minisnn-train`` in the same folder (say, a ``--resume`` while the first still runs) is
    refused instead of writing over it.  The lock goes with the process, even on ``kill -9``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK_FILE, "a")
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ValueError(f"--out {out} is in use by another minisnn-train run (it holds {LOCK_FILE}): "
                                 f"wait for it to end or choose another --out") from None
        prepare_out(out, overwrite=overwrite, resume=resume)
        yield out
    finally:
        handle.close()


def prepare_out(out, *, overwrite: bool = False, resume: bool = False) -> None:
    """Check ``--out`` before a run: never clobber an earlier run without ``overwrite``; with
    ``resume`` there must be a run to continue; the folder must be writable.  ``overwrite``
    deletes the earlier run's files (only those, see :data:`RUN_FILES`).  Errors are one-line
    ValueErrors naming the folder and the options."""
    out = Path(out)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other: replace the run or continue it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    found = existing_run_files(out)
    if resume:
        if not any((d / STATE_DIR / "run.json").is_file() for d in _run_dirs(out)):
            raise ValueError(f"--resume: {out} holds no run to continue (no {STATE_DIR}/run.json); "
                             f"run without --resume to start one")
    elif found and not overwrite:
        more = f" and {len(found) - 1} more files" if len(found) > 1 else ""
        raise ValueError(f"--out {out} already holds a run ({found[0]}{more}): use --overwrite to replace it "
                         f"or --resume to continue it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    if overwrite:
        for name in found:
            (out / name).unlink()
        for d in _run_dirs(out):
            for sub in (d / STATE_DIR, d / "predictions"):
                for tmp in sub.glob(".*.tmp") if sub.is_dir() else ():
                    tmp.unlink()
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunState:
    """``OUT/state/run.json``: the settings a run was started with and the phases it finished,
    plus the paths of its training checkpoints (``OUT/state/<phase>_train.npz``).

    A fresh run writes it first; a resumed run (``resume=True``) checks that its settings are the
    saved ones (one-line ValueError listing the differences) and skips the finished phases.
    Without a ``run.json`` a resumed run starts afresh (a fold that had not begun yet).

    Under several MPI processes rank 0 alone reads and writes the folder: it sends what it read
    to the others.
    """

    def __init__(self, out, app: str, settings: dict, resume: bool = False, log=print):
        self.dir = Path(out) / STATE_DIR
        self.path = self.dir / "run.json"
        self.resuming = False
        self.record = {"app": app, "settings": settings, "phases": []}
        self.writer = world().rank == 0
        if resume and world().bcast(self.path.is_file() if self.writer else None):
            saved_settings, phases = world().bcast(self._read(app) if self.writer else None)
            diff = _differences(saved_settings, settings)
            if diff:
                raise ValueError(f"--resume: the run in {Path(out)} was started with other settings: "
                                 f"{'; '.join(diff[:4])}{' ...' if len(diff) > 4 else ''}: give the same options")
            self.record["phases"] = phases
            self.resuming = True
            log(f"resuming the run in {Path(out)} (finished: {', '.join(phases) or 'nothing yet'})")
        elif resume:
            log(f"no run to continue in {Path(out)}: starting one")
        if not self.resuming and self.writer:  # a fresh start: no checkpoint of an earlier run may be picked up later
            for stale in self.dir.glob("*_train.npz"):
                stale.unlink()
        self._write()

    def _read(self, app: str) -> tuple:
        try:
            saved = json.loads(self.path.read_text())
            saved_settings, phases = saved["settings"], list(saved["phases"])
            if saved["app"] != app:
                raise ValueError(f"a minisnn-train {saved['app']} run, not {app}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--resume: {self.path}: not a readable run record ({e})") from None
        return saved_settings, phases

    def _write(self):
        if self.writer:
            atomic_write_json(self.path, self.record)

    def checkpoint(self, phase: str) -> Path:
        """Where :func:`minisnn.train.fit` keeps the state of ``phase``; a finished phase's file must exist."""
        path = self.dir / f"{phase}_train.npz"
        if self.is_done(phase) and self.writer and not path.is_file():
            raise ValueError(f"--resume: {path} is missing although {phase} training had finished: "
                             f"start over with --overwrite")
        return path

    def is_done(self, phase: str) -> bool:
        return phase in self.record["phases"]

    def done(self, phase: str) -> None:
        if phase not in self.record["phases"]:
            self.record["phases"].append(phase)
            self._write()


def _differences(saved, now, prefix="") -> list:
    """``["config.epochs: 5 (now 2)", ...]`` between two JSON-like dicts."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {a!r} (now {b!r})")
    return out


def phase_done(state, phase: str, hist: dict, log) -> None:
    """Record a finished training phase; say so when it was (partly) loaded from its checkpoint."""
    if state is None:
        return
    if "resumed_from" in hist:
        what = ("loaded (finished earlier)" if state.is_done(phase) or hist["resumed_from"] == hist["epochs_run"]
                else f"continued after {hist['resumed_from']} epochs")
        log(f"{phase}: {what} from {state.checkpoint(phase)}")
    state.done(phase)


def run_settings(cfg, data_dir=None, fold=None) -> dict:
    """What a resumed run must share with the interrupted one: the config (JSON round trip), the
    data folder and the fold."""
    return {"config": json.loads(json.dumps(cfg.to_dict())),
            "data": None if data_dir is None else os.path.abspath(data_dir),
            "fold": None if fold is None else _hash([np.asarray(f).tolist() for f in fold])}


@contextmanager
def loading_bar(label: str, quiet: bool):
    """A progress bar for a loader: yields the ``progress(done, total)`` callback to pass it."""
    bar = Bar(1, label, quiet=quiet)

    def progress(done, total):
        bar.total = max(total, 1)
        bar.update(done - bar.done)

    try:
        yield progress
    finally:
        bar.close()


def fit_ann(cfg, net, step, train, val: Callable[[], float], metric: str, quiet: bool, callbacks=(), *,
            checkpoint=None, resume: bool = False, rngs=None) -> dict:
    """Train the rate network for ``cfg.epochs``, keeping the epoch with the best ``val()``;
    ``checkpoint``, ``resume`` and ``rngs`` go to :func:`minisnn.train.fit`, with the
    processes of :func:`minisnn.parallel.world` (``step`` takes ``part=``, see :func:`on_part`)."""
    bar = EpochBar("ANN", cfg.epochs, batches_of(len(train[0]), cfg.batch_size), quiet, f"val {metric}")
    return fit(net, step, train, val_fn=val, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
               seed=cfg.seed, goal="max", callbacks=[bar, *callbacks], checkpoint=checkpoint, resume=resume,
               rngs=rngs, comm=world())


def on_part(loss: Callable) -> Callable:
    """A step function for :func:`minisnn.train.fit` from ``loss(xb, yb, first_index)``: given
    a process's share of a global batch (``part=``), it computes the share's loss, whose inputs
    start at ``part.start`` of the global batch, and returns None for an empty share; alone it
    is ``loss(xb, yb, 0)``.  (For steps that draw no random numbers: one that does must draw
    them for the whole global batch, as :func:`minisnn.apps.loc` flips do.)"""

    def step(xb, yb, part=None):
        if part is None:
            return loss(xb, yb, 0)
        return loss(xb, yb, part.start) if part.stop > part.start else None

    return step


def fit_hybrid(cfg, snet: SpikingNet, step, train, x_val, val: Callable[[SpikingEval], float], metric: str,
               quiet: bool, prepare=None, *, checkpoint=None, resume: bool = False, rngs=None) -> dict:
    """Hybrid fine-tuning with early stopping on ``val(SpikingEval of the validation inputs)``,
    the spiking net simulated at the operating point (``cfg.steps_short``, at most
    ``cfg.steps_eval``) before training (the converted net is the one to beat: it is kept if no
    epoch improves on it) and after every epoch; ``checkpoint``, ``resume`` and ``rngs`` go to
    :func:`minisnn.train.fit`."""
    last = {}
    val_steps = min(cfg.steps_short, cfg.steps_eval)

    def val_fn():
        ev = run_snn(snet, x_val, val_steps, cfg.eval_batch, prepare=prepare)
        last["rate"] = ev.mean_rate
        return val(ev)

    batch = cfg.hybrid_batch_size or cfg.batch_size
    bar = EpochBar("hybrid", cfg.hybrid_epochs, batches_of(len(train[0]), batch), quiet, f"val {metric}",
                   extra=lambda: {"rate Hz": last.get("rate", float("nan"))})
    return fit(snet, step, train, val_fn=val_fn, epochs=cfg.hybrid_epochs, batch_size=batch,
               lr=cfg.hybrid_lr, seed=[cfg.seed, STREAM_HYBRID_SHUFFLE], patience=cfg.patience, goal="max",
               callbacks=[bar], validate_first=True, checkpoint=checkpoint, resume=resume, rngs=rngs,
               comm=world())


def metric_vs_steps(steps, models: dict, x, measure: Callable[[np.ndarray], float], batch: int,
                    prepare=None, evals: dict | None = None, energy: Callable[[SpikingEval], float] | None = None
                    ) -> dict:
    """``{"steps": [...], name: [metric at each T]}`` for every spiking model in ``models``;
    ``measure`` scores raw readouts; with ``energy`` (of a :class:`SpikingEval`, e.g. uJ per
    input) also ``{name + "_energy": [energy at each T]}``.  The readouts come from
    ``evals[name]`` (runs already made on the same ``x``) where they hold that T, the others
    from one more run at the longest missing T (a run of T steps also gives every shorter run's
    readout and synaptic operations)."""
    steps = sorted({int(T) for T in steps})
    curve = {"steps": steps}
    for name, model in models.items():
        runs = {}  # {T: the SpikingEval holding it}
        if evals and name in evals:
            runs.update({T: evals[name] for T in evals[name].outputs_at})
        missing = [T for T in steps if T not in runs]
        if missing:
            ev = run_snn(model, x, missing[-1], batch, prepare=prepare, also_at=missing)
            runs.update({T: ev for T in missing})
        curve[name] = [measure(runs[T].outputs_at[T]) for T in steps]
        if energy is not None:
            curve[f"{name}_energy"] = [energy(runs[T].at(T)) for T in steps]
    return curve


def write_figures(out, results: dict, metric: str, curve_key: str, inputs: str, loss: str = "loss",
                  metric_key: str = "mean_iou") -> dict:
    """The figures both apps draw: firing rates per layer (converted vs hybrid), validation
    ``metric`` per epoch (ANN, then hybrid), the training ``loss`` per epoch, the test
    ``metric`` against T, and the frontier: the test metric against the energy per input
    across T (table rows' ``metric_key``: the first row is the constant baseline, the second
    the ANN).  Returns ``{figure key: file name}``."""
    from . import plots

    figs = {"rates": "firing_rates.png", curve_key: f"{curve_key}.png"}
    rates = results["rates_hz"]
    layers = list(rates["converted"])
    plots.bar_chart(out / figs["rates"], [f"L{k}" for k in layers],
                    {name: [rates[name][k] for k in layers] for name in ("converted", "hybrid")},
                    title=f"average firing rate per spiking layer (test {inputs})", ylabel="Hz")
    ann, hyb = results["history"]["ann"]["val"], results["history"]["hybrid"]["val"]
    series = {}
    if ann:
        series[f"ANN val {metric}"] = (list(range(1, len(ann) + 1)), ann)
    if hyb:
        series[f"hybrid SNN val {metric}"] = (list(range(len(ann) + 1, len(ann) + len(hyb) + 1)), hyb)
    if series:  # nothing to draw with --epochs 0 --hybrid-epochs 0
        figs["training"] = "training.png"
        plots.line_chart(out / figs["training"], series, title=f"validation {metric} per epoch (ANN, then hybrid)",
                         xlabel="epoch", ylabel=metric)
        # the same epochs' mean training loss (the task term, without the rate regularizer)
        losses = {}
        for name, phase, first in (("ANN", "ann", 1), ("hybrid SNN", "hybrid", len(ann) + 1)):
            task = results["history"][phase]["task_loss"]
            if task:
                losses[f"{name} training loss"] = (list(range(first, first + len(task))), task)
        figs["loss"] = "loss.png"
        plots.line_chart(out / figs["loss"], losses, title=f"training {loss} per epoch (ANN, then hybrid)",
                         xlabel="epoch", ylabel=loss)
    c = results[curve_key]
    plots.line_chart(out / figs[curve_key], {"converted SNN": (c["steps"], c["converted"]),
                                             "hybrid SNN": (c["steps"], c["hybrid"])},
                     title=f"test {metric} against the presentation length T", xlabel="T (steps of 1 ms)",
                     ylabel=metric)
    if "converted_energy" in c:
        figs["frontier"] = "frontier.png"
        plots.line_chart(out / figs["frontier"], frontier_series(c, results["table"], metric_key),
                         title=f"test {metric} against energy per {inputs[:-1]} (SNNs at T = "
                               f"{', '.join(map(str, c['steps']))})",
                         xlabel=f"energy per {inputs[:-1]} (uJ, complete count)", ylabel=metric, logx=True)
    return figs


def frontier_series(curve: dict, table: list, metric_key: str) -> dict:
    """The frontier figure's lines: each SNN's (energy, metric) across T, and the ANN's and
    the constant baseline's metric as horizontal lines over that energy range (the ANN's own
    energy marked by a dot on its line)."""
    energies = curve["converted_energy"] + curve["hybrid_energy"]
    ann = table[1]
    lo, hi = min(energies + [ann["energy_uj"]]), max(energies + [ann["energy_uj"]])
    return {"converted SNN": (curve["converted_energy"], curve["converted"]),
            "hybrid SNN": (curve["hybrid_energy"], curve["hybrid"]),
            "ANN": ([lo, ann["energy_uj"], hi], [ann[metric_key]] * 3),
            table[0]["model"]: ([lo, hi], [table[0][metric_key]] * 2)}


def figure_sections(results: dict, titles: dict) -> list:
    """Markdown lines embedding the written figures, ``titles = {figure key: heading}``."""
    lines = []
    for key, title in titles.items():
        if key in results.get("figures", {}):
            lines += [f"## {title}", "", f"![{title}]({results['figures'][key]})", ""]
    return lines
