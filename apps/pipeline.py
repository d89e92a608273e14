"""One pipeline for every task: data -> ANN -> convert -> evaluate -> hybrid -> evaluate ->
metric against T -> table -> files.

A task (:class:`Task`; :class:`minisnn.apps.loc.LocTask`, :class:`minisnn.apps.seg.SegTask`)
says what is particular to it: how its data are loaded and split, its baseline, its net, how
the net is trained, how inputs are encoded and outputs decoded, how predictions are scored,
and its table, figures and report text.  Everything else is here, once:

* :func:`run` - the whole experiment, with a checkpoint every epoch and ``resume``;
* :func:`run_folds` - k-fold cross-validation, the table averaged over the folds;
* :func:`evaluate_checkpoint` - a saved net on every input of a data folder;
* :func:`write_outputs` and :func:`report_markdown` - checkpoints, figures, ``results.json``
  and ``report.md``.

Adding a task means writing one module with a :class:`Task` subclass and its presets.

Under ``mpirun`` (several processes, :func:`minisnn.parallel.world`) every process runs the
same pipeline on the same data: the training steps, the validation and every evaluation are
shared between them (:func:`minisnn.train.fit`, :func:`predict_ann`,
:func:`minisnn.apps.common.run_snn`), and rank 0 alone reads and writes ``--out`` and the data
cache.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..autodiff import no_grad
from ..hybrid import SpikingNet, convert
from ..io import atomic_write_json, atomic_write_text, load_checkpoint, save_checkpoint
from ..parallel import world
from ..simulate import ann_macs
from .common import (
    ENERGY_PJ,
    RunState,
    SpikingEval,
    energy_fields,
    energy_note,
    figure_sections,
    metric_vs_steps,
    phase_done,
    recovery_line,
    run_settings,
    run_snn,
    sentence,
    short_evals,
    snn_rows,
    target_line,
    write_figures,
)


@dataclass
class Split:
    """A run's inputs and targets in its three parts, and what the results say about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train: np.ndarray           # the training items' indices in the data (images, subjects)
    test: np.ndarray            # the test items' indices in the data
    info: dict                  # results.json's "data"
    log: list = field(default_factory=list)  # lines describing the split


class Task:
    """What a task supplies to the pipeline.  One object per run: ``split`` keeps on it what
    the task fits on the training data (LocNet's normalizer, the CAE's slices per subject), so
    the methods after it take only arrays."""

    name = ""                   # "app" in results.json and in the checkpoints
    label = ""                  # the task in messages ("LocNet")
    Config = None               # the task's Config dataclass
    title = ""                  # the report's heading
    metric = ""                 # the table's headline key in score()'s dict
    metric_label = ""           # how the text calls it ("mean IoU")
    metric_short = ""           # the progress bars' name for it ("IoU")
    curve_key = ""              # results.json key of the metric against T
    inputs = "inputs"           # what one input is called, plural ("images", "slices")
    loss_label = "loss"         # the training loss figure's axis
    baseline_label = ""         # the table's first row
    ann_label = ""              # the table's second row
    figure_titles: dict = {}    # {figure key: the report's heading}
    ann_batch = 64              # inputs per forward pass of the rate network
    encode = None               # maps inputs to the net's input (None: as they are)
    writes = "checkpoints and figures"  # what the command line says it wrote besides results.json

    def __init__(self, cfg):
        self.cfg = cfg

    # data ------------------------------------------------------------------------------------
    def load(self, data_dir=None, cache_dir=None, quiet=True):
        """The data set in ``data_dir`` or, without it, the task's seeded synthetic one."""
        raise NotImplementedError

    def split(self, data, fold=None) -> Split:
        """Train / validation / test parts (``fold``: a k-fold's ``(train, test)`` indices)."""
        raise NotImplementedError

    def baseline(self, data, split: Split) -> dict:
        """The scores of a prediction that uses no input (the table's first row)."""
        raise NotImplementedError

    def folds(self, data, k: int) -> list:
        """k ``(train, test)`` index pairs for :func:`run_folds`."""
        raise ValueError(f"{self.name}: no k-fold cross-validation for this task")

    def everything(self, data) -> tuple:
        """``(inputs, targets, description)`` of every item of ``data`` (for a checkpoint's evaluation)."""
        raise NotImplementedError

    # the net ---------------------------------------------------------------------------------
    def build(self):
        """The rate network with its seeded initial weights."""
        raise NotImplementedError

    def initialize(self, net, split: Split) -> None:
        """Anything done to a new net before training (data-dependent initialization)."""

    def train_ann(self, net, split: Split, quiet, checkpoint=None, resume=False) -> dict:
        raise NotImplementedError

    def train_hybrid(self, snet: SpikingNet, split: Split, quiet, checkpoint=None, resume=False) -> dict:
        raise NotImplementedError

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """The net's raw outputs as predictions (boxes, probabilities)."""
        return raw

    # scores, table, files --------------------------------------------------------------------
    def score(self, pred: np.ndarray, target: np.ndarray) -> dict:
        raise NotImplementedError

    def row(self, model: str, scores: dict, macs=None, neurons: int = 0, ev: SpikingEval | None = None) -> dict:
        """One table row: the model's name, its scores' table keys, and (with ``macs``) its
        energy columns (an SNN's with ``ev``)."""
        row = {"model": model, **{k: scores[k] for k in self.row_keys},
               "steps": None, "rate_hz": None, "energy_vs_ann": None}  # every row has these keys
        if macs is not None:
            row.update(energy_fields(macs, neurons, ev))
        return row

    row_keys: tuple = ()        # the keys of score()'s dict a table row keeps
    fold_means: dict = {}       # {key: its standard error's key} averaged by run_folds (s.e. over folds)
    fold_averages: tuple = ()   # further keys run_folds averages

    @classmethod
    def table(cls, rows: list) -> str:
        """The table as aligned text (a class method: ``minisnn-eval`` prints one without a run)."""
        raise NotImplementedError

    def headline(self, results: dict) -> str:
        """The line above the table the command line prints."""
        raise NotImplementedError

    def checkpoint_meta(self) -> dict:
        """What a checkpoint needs besides the config to rebuild the task (see :meth:`restore`)."""
        return {}

    def restore(self, meta: dict) -> None:
        """Take back what :meth:`checkpoint_meta` saved."""

    def checkpoint_baseline(self, x, y) -> tuple | None:
        """``(row label, scores)`` of the baseline a checkpoint alone can score, or None."""
        return None

    def results_extra(self, split: Split, rows: list, data_dir) -> dict:
        """Keys of results.json particular to the task."""
        return {}

    def example_figure(self, out: Path, split: Split, predictions: dict) -> dict:
        """Draw test inputs with the predictions of ``{"ANN", "converted", "hybrid"}``; returns
        ``{figure key: file name}``."""
        return {}

    def extra_outputs(self, out: Path, data, split: Split, predictions: dict, results: dict) -> None:
        """Files besides the common ones (the CAE's predicted masks)."""

    def snn_note(self) -> str:
        """The report's sentence on how the SNNs were simulated and read out."""
        raise NotImplementedError

    def data_line(self, info: dict) -> str:
        """The report's line on the data and the split."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- prediction


def predict_ann(task: Task, net, x: np.ndarray) -> np.ndarray:
    """The rate network's predictions for ``x``, ``task.ann_batch`` inputs at a time (under
    several processes each predicts its share, whole batches where there are enough, and every
    process gets all predictions)."""
    comm, out = world(), []
    lo, hi = comm.part(len(x), task.ann_batch)
    with no_grad():
        for i in range(lo, hi, task.ann_batch):
            xb = x[i : min(i + task.ann_batch, hi)]
            out.append(net(xb if task.encode is None else task.encode(xb)).data)
    if comm.size > 1:
        out = [o for share in comm.allgather(out) for o in share]
    return task.decode(np.concatenate(out))


def load_data(task: Task, data_dir=None, cache_dir=None, quiet=True):
    """``task.load``; under several processes only rank 0 uses (and writes) the data cache."""
    return task.load(data_dir, cache_dir if world().rank == 0 else None, quiet)


def predict_snn(task: Task, snet: SpikingNet, x: np.ndarray, steps: int, label="SNN", quiet=True,
                also_at=()) -> SpikingEval:
    """Simulate the spiking network on ``x``; ``outputs`` are decoded predictions, the readouts
    of the shorter presentations ``also_at`` (``outputs_at``) stay raw."""
    ev = run_snn(snet, x, steps, task.cfg.eval_batch, prepare=task.encode, label=label, quiet=quiet,
                 also_at=also_at)
    ev.outputs = task.decode(ev.outputs)
    return ev


class _Clock:
    """Wall times of a run's phases, ``timings[name]`` in seconds."""

    def __init__(self):
        self.start = time.perf_counter()
        self.timings = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0

    def total(self) -> dict:
        self.timings["total_s"] = time.perf_counter() - self.start
        return self.timings


# ----------------------------------------------------------------------------- the experiment


def run(task: Task, out_dir, data_dir=None, *, cache_dir=None, quiet=False, fold=None, data=None,
        write_files=True, log=print, resume=False) -> dict:
    """The whole experiment; returns the results dict (also written to ``out_dir``).

    With ``write_files`` the ANN and hybrid training write a checkpoint every epoch to
    ``out_dir/state/`` (with ``run.json``, the settings and the finished phases); ``resume``
    continues an interrupted run from there: finished training phases are loaded, not repeated,
    and the results are those of an uninterrupted run.  ``data`` (already loaded) and ``fold``
    come from :func:`run_folds`."""
    cfg, out, clock = task.cfg, Path(out_dir), _Clock()
    state = RunState(out, task.name, run_settings(cfg, data_dir, fold), resume, log) if write_files else None
    with clock("data_s"):
        data = load_data(task, data_dir, cache_dir, quiet) if data is None else data
    sp = task.split(data, fold)
    for line in sp.log:
        log(line)
    base = task.baseline(data, sp)

    net = task.build()
    task.initialize(net, sp)
    macs = ann_macs(net, sp.x_test.shape[1:])
    with clock("ann_train_s"):
        hist_ann = task.train_ann(net, sp, quiet, checkpoint=state and state.checkpoint("ann"),
                                  resume=bool(state and state.resuming))
    phase_done(state, "ann", hist_ann, log)
    p_ann = predict_ann(task, net, sp.x_test)
    s_ann = task.score(p_ann, sp.y_test)
    log(f"ANN: test {task.metric_label} {s_ann[task.metric]:.4f} ({hist_ann['message']})")

    def converted():
        return convert(net, synapse=cfg.synapse, steps=cfg.steps_eval, dt=cfg.dt, seed=cfg.seed,
                       precision=cfg.precision)

    also_at = (*cfg.steps_curve, cfg.steps_short)
    with clock("converted_eval_s"):
        snet = converted()
        ev_conv = predict_snn(task, snet, sp.x_test, cfg.steps_eval, "converted SNN (test)", quiet, also_at)
        s_conv = task.score(ev_conv.outputs, sp.y_test)
    log(f"converted SNN: test {task.metric_label} {s_conv[task.metric]:.4f}, {ev_conv.mean_rate:.1f} Hz")

    with clock("hybrid_train_s"):
        hnet = converted()
        hist_hyb = task.train_hybrid(hnet, sp, quiet, checkpoint=state and state.checkpoint("hybrid"),
                                     resume=bool(state and state.resuming))
    phase_done(state, "hybrid", hist_hyb, log)
    with clock("hybrid_eval_s"):
        ev_hyb = predict_snn(task, hnet, sp.x_test, cfg.steps_eval, "hybrid SNN (test)", quiet, also_at)
        s_hyb = task.score(ev_hyb.outputs, sp.y_test)
    log(f"hybrid SNN: test {task.metric_label} {s_hyb[task.metric]:.4f}, {ev_hyb.mean_rate:.1f} Hz "
        f"({hist_hyb['message']})")

    def scores_of(raw):
        return task.score(task.decode(raw), sp.y_test)

    evals = {"converted": ev_conv, "hybrid": ev_hyb}
    short = short_evals(cfg, evals, scores_of)  # the operating point: the first steps_short steps of the runs
    neurons = sum(ev_conv.sizes.values())
    with clock("curve_s"):
        curve = metric_vs_steps(cfg.steps_curve, {"converted": snet, "hybrid": hnet}, sp.x_test,
                                lambda raw: scores_of(raw)[task.metric], cfg.eval_batch, prepare=task.encode,
                                evals=evals, energy=lambda ev: energy_fields(macs, neurons, ev)["energy_uj"])
    timings = clock.total()

    snn, rec = snn_rows(task.row, macs, neurons, task.metric, s_ann,
                        (cfg.steps_eval, {"converted": (ev_conv, s_conv), "hybrid": (ev_hyb, s_hyb)}),
                        (cfg.steps_short, short))
    rows = [task.row(task.baseline_label, base), task.row(task.ann_label, s_ann, macs, neurons), *snn]
    results = {
        "app": task.name, "config": cfg.to_dict(), "data": sp.info,
        "table": rows, "ann_macs": macs, "energy_pj": ENERGY_PJ,
        "rates_hz": {"converted": ev_conv.rates, "hybrid": ev_hyb.rates}, "layer_sizes": ev_conv.sizes,
        "history": {"ann": hist_ann, "hybrid": hist_hyb}, task.curve_key: curve, "recovery": rec,
        "timings_s": timings, **task.results_extra(sp, rows, data_dir),
    }
    if world().size > 1:
        results["mpi_processes"] = world().size
    if write_files and world().rank == 0:
        write_outputs(task, out, results, net, hnet, data, sp,
                      {"ANN": p_ann, "converted": ev_conv.outputs, "hybrid": ev_hyb.outputs})
    if write_files:
        state.done("outputs")
    return results


def run_folds(task: Task, out_dir, data_dir=None, k: int = 5, *, cache_dir=None, quiet=False, log=print,
              resume=False) -> dict:
    """k-fold cross-validation: :func:`run` once per fold (in ``out_dir/fold<i>``), each fold
    the test set once; the summary table holds each model's mean over the folds (the standard
    error is that of the k fold means).  Written to ``out_dir/results.json``."""
    data = load_data(task, data_dir, cache_dir, quiet)
    per_fold = []
    for i, fold in enumerate(task.folds(data, k)):
        log(f"fold {i + 1}/{k}")
        per_fold.append(run(task, Path(out_dir) / f"fold{i + 1}", data_dir, fold=fold, data=data, quiet=quiet,
                            log=log, resume=resume))
    rows = []
    for j, row in enumerate(per_fold[0]["table"]):
        merged = dict(row, model=f"{row['model']} [{k} folds]")
        for key, sem in task.fold_means.items():
            means = np.array([r["table"][j][key] for r in per_fold])
            merged.update({key: float(means.mean()), sem: float(means.std(ddof=1) / np.sqrt(k))})
        for key in (*task.fold_averages, "rate_hz", "synops", "energy_uj", "energy_vs_ann",
                    "energy_vs_ann_synaptic"):
            if row.get(key) is not None:
                merged[key] = float(np.mean([r["table"][j][key] for r in per_fold]))
        rows.append(merged)
    summary = {"app": task.name, "folds": k, "table": rows, "per_fold": [r["table"] for r in per_fold],
               "data": dict(per_fold[0]["data"], n_test=sum(r["data"]["n_test"] for r in per_fold)),
               "timings_s": {"total_s": sum(r["timings_s"]["total_s"] for r in per_fold)}, "targets": {}}
    if world().rank == 0:
        atomic_write_json(Path(out_dir) / "results.json", summary)
    return summary


# ----------------------------------------------------------------------------- files


def checkpoint_meta(task: Task, kind: str, snet: SpikingNet | None = None) -> dict:
    """A checkpoint's metadata: the task, ``kind`` ("ann" or "snn"), the config, what the task
    needs besides (:meth:`Task.checkpoint_meta`) and the spiking net's simulation settings."""
    meta = {"app": task.name, "kind": kind, "config": task.cfg.to_dict(), **task.checkpoint_meta()}
    if snet is not None:
        meta["snn"] = {"synapse": snet.synapse, "steps": snet.steps, "dt": snet.dt, "seed": snet.seed,
                       "precision": snet.precision}
    return meta


def write_outputs(task: Task, out: Path, results: dict, net, hnet: SpikingNet, data, split: Split,
                  predictions: dict) -> None:
    """The checkpoints ``ann.npz`` and ``hybrid_snn.npz``, the figures, the task's own files,
    then ``results.json`` and ``report.md`` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "ann.npz", net.state_dict(), checkpoint_meta(task, "ann"))
    save_checkpoint(out / "hybrid_snn.npz", hnet.state_dict(), checkpoint_meta(task, "snn", hnet))
    figs = task.example_figure(out, split, predictions)
    figs.update(write_figures(out, results, task.metric_label, task.curve_key, task.inputs, loss=task.loss_label,
                              metric_key=task.metric))
    task.extra_outputs(out, data, split, predictions, results)
    results["figures"] = figs
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", report_markdown(task, results))


def report_markdown(task: Task, results: dict) -> str:
    """``report.md``: the data, the table, how the SNNs were run and the energy counted, the
    targets, the recovery, the wall time and the figures."""
    cfg, t = results["config"], results["timings_s"]
    lines = [f"# {task.title} ({cfg['preset']} preset)", "", task.data_line(results["data"]), "",
             "```", task.table(results["table"]), "```", "",
             f"{task.snn_note()} {energy_note(results['energy_pj'])}", ""]
    if results.get("targets"):
        lines += ["Targets:", ""] + [f"- {name}: {target_line(v)}" for name, v in results["targets"].items()] + [""]
    if results.get("recovery") is not None:
        lines += [sentence(recovery_line(results["recovery"], task.metric_label)), ""]
    lines += [f"Wall time: {t['total_s'] / 60:.1f} min (ANN training {t['ann_train_s']:.0f} s, hybrid "
              f"training {t['hybrid_train_s']:.0f} s).", ""]
    lines += figure_sections(results, task.figure_titles)
    return "\n".join(lines)


def summary_lines(task: Task, results: dict, out_dir) -> list:
    """What the command line prints when a run ends: the headline, the table, the targets,
    the recovery and what was written."""
    lines = ["", task.headline(results), task.table(results["table"])]
    lines += [f"  target {name}: {target_line(v)}" for name, v in results.get("targets", {}).items()]
    if results.get("recovery") is not None:
        lines.append(f"  {recovery_line(results['recovery'], task.metric_label)}")
    lines.append(f"wrote {out_dir}/results.json, report.md, {task.writes} "
                 f"({results['timings_s']['total_s'] / 60:.1f} min)")
    return lines


# ----------------------------------------------------------------------------- a saved net


def evaluate_checkpoint(task_class: type, path, data_dir=None, steps: int | None = None, *, quiet=True,
                        cache_dir=None, log=print, precision: str | None = None) -> dict:
    """Evaluate a saved net (``ann.npz`` or ``hybrid_snn.npz``) on every input of a data folder:
    the baseline the checkpoint can score, the rate network and the spiking network (simulated
    with the synapse, dt, seed and precision it was trained with, for ``steps`` or its own T,
    in ``precision`` if given).  Under several processes rank 0 reads the checkpoint and sends it
    to the others."""
    state, meta = world().bcast(load_checkpoint(path) if world().rank == 0 else None)
    if meta.get("app") != task_class.name:
        raise ValueError(f"{path}: not a {task_class.label} checkpoint (app {meta.get('app')!r})")
    task = task_class(task_class.Config.from_dict(meta["config"]))
    task.restore(meta)
    cfg = task.cfg
    net = task.build()
    net.load_state_dict(state)
    x, y, description = task.everything(load_data(task, data_dir, cache_dir, quiet))
    log(f"data: {description}; checkpoint {path} ({meta.get('kind')})")
    T = steps if steps is not None else cfg.steps_eval
    snn = meta.get("snn", {})
    snet = convert(net, synapse=snn.get("synapse", cfg.synapse), steps=T, dt=snn.get("dt", cfg.dt),
                   seed=snn.get("seed", cfg.seed),
                   precision=precision or snn.get("precision", cfg.precision))
    macs = ann_macs(net, x.shape[1:])
    ev = predict_snn(task, snet, x, T, "SNN", quiet)
    kind = "hybrid SNN" if meta.get("kind") == "snn" else "converted SNN"
    neurons = sum(ev.sizes.values())
    base = task.checkpoint_baseline(x, y)
    rows = [] if base is None else [task.row(*base)]
    rows += [task.row("rate network (these weights)", task.score(predict_ann(task, net, x), y), macs, neurons),
             task.row(f"{kind} (T={T})", task.score(ev.outputs, y), macs, neurons, ev)]
    return {"table": rows, "steps": T, "checkpoint": str(path), "data": description}
