"""What every application shares: spiking evaluation in batches, the energy estimate, the
epoch progress bar of the training loop, and a plain-text table.

The task modules (:mod:`minisnn.apps.loc`, ...) add their data, metric and figures.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..hybrid import SpikingNet
from ..layers import Sequential
from ..simulate import ann_macs
from ..train import fit
from .progress import Bar

#: Energy per operation used for the estimates in the tables (45 nm CMOS, 32-bit floating
#: point): a multiply-accumulate (ANN) = multiply 3.7 pJ + add 0.9 pJ; a synaptic operation
#: (SNN: a spike adds a weight) = one add, 0.9 pJ.  Source: M. Horowitz, "Computing's energy
#: problem (and what we can do about it)", ISSCC 2014 - the figures most SNN papers use.
ENERGY_PJ = {"mac": 4.6, "synop": 0.9,
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
    sizes: dict = field(default_factory=dict)
    outputs_at: dict = field(default_factory=dict)  # {T: raw readouts of a T-step run}, T = steps too


def _steps_below(steps, T) -> list:
    return sorted({int(t) for t in steps if t < T})


def run_snn(snet: SpikingNet, x: np.ndarray, steps: int, batch: int = 16, *,
            prepare: Callable[[np.ndarray], np.ndarray] | None = None, label: str = "SNN",
            quiet: bool = True, also_at=()) -> SpikingEval:
    """Simulate ``snet`` on ``x`` for ``steps`` steps, ``batch`` inputs at a time; ``prepare``
    maps a slice of ``x`` to the network's input (e.g. standardization).  The readouts of the
    shorter presentations ``also_at`` come from the same run (``SpikingEval.outputs_at``)."""
    also_at = _steps_below(also_at, steps)
    outputs, n = [], len(x)
    at: dict = {T: [] for T in also_at}
    counts, synops, sizes = {}, 0.0, {}
    with Bar((n + batch - 1) // batch, label, unit="batches", quiet=quiet) as bar:
        for i in range(0, n, batch):
            xb = x[i : i + batch] if prepare is None else prepare(x[i : i + batch])
            res = snet.run(xb, steps, also_at=also_at, first_index=i)  # same spikes for any batch size
            outputs.append(res.readout)
            for T in also_at:
                at[T].append(res.readouts_at[T])
            sizes = res.sizes
            for k, r in res.rates.items():
                counts[k] = counts.get(k, 0.0) + r * len(xb)
            synops += res.synops["total"] * len(xb)
            bar.update(1, rate=f"{res.mean_rate:.0f} Hz")
    rates = {k: v / n for k, v in counts.items()}
    total = sum(sizes.values())
    mean_rate = sum(rates[k] * sizes[k] for k in sizes) / total if total else 0.0
    outputs = np.concatenate(outputs)
    outputs_at = {T: np.concatenate(v) for T, v in at.items()}
    outputs_at[steps] = outputs
    return SpikingEval(outputs, rates, float(mean_rate), synops / n, first_layer_macs(snet.net, x.shape[1:]),
                       steps, sizes, outputs_at)


def first_layer_macs(net: Sequential, shape) -> float:
    """MACs of the first layer: the SNN computes it once per input on the static input, as an
    ANN would, and it then drives the first spiking layer with a constant current."""
    return ann_macs(Sequential(net[0]), shape)


def energy_fields(macs: float, ev: SpikingEval | None = None) -> dict:
    """Table columns for the energy estimate: the ANN's (``ev`` None) or an SNN's."""
    ann_uj = macs * ENERGY_PJ["mac"] * 1e-6
    if ev is None:
        return {"synops": None, "energy_uj": ann_uj, "energy_vs_ann": 1.0, "macs": macs}
    energy = (ev.synops * ENERGY_PJ["synop"] + ev.first_layer_macs * ENERGY_PJ["mac"]) * 1e-6
    return {"rate_hz": ev.mean_rate, "synops": ev.synops, "energy_uj": energy, "steps": ev.steps,
            "energy_vs_ann": energy / ann_uj if ann_uj else None}


def format_table(headers: list, rows: list) -> str:
    """Aligned plain text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_or_dash(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


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


def make_config(presets: dict, preset: str, overrides: dict):
    """``presets[preset]`` with the non-None ``overrides``, checked: epochs >= 0, batch sizes and
    step counts >= 1, learning rates > 0 (errors name the command-line option)."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
    cfg = dataclasses.replace(presets[preset], **{k: v for k, v in overrides.items() if v is not None})
    for name in ("epochs", "hybrid_epochs", "batch_size", "steps_train", "steps_eval", "eval_batch"):
        low = 0 if name in ("epochs", "hybrid_epochs") else 1
        if getattr(cfg, name) < low:
            raise ValueError(f"{name.replace('_', '-')} must be >= {low}, got {getattr(cfg, name)}")
    for name in ("lr", "hybrid_lr"):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name.replace('_', '-')} must be > 0, got {getattr(cfg, name)}")
    return cfg


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


def fit_ann(cfg, net, step, train, val: Callable[[], float], metric: str, quiet: bool, callbacks=()) -> dict:
    """Train the rate network for ``cfg.epochs``, keeping the epoch with the best ``val()``."""
    bar = EpochBar("ANN", cfg.epochs, batches_of(len(train[0]), cfg.batch_size), quiet, f"val {metric}")
    return fit(net, step, train, val_fn=val, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
               seed=cfg.seed, mode="max", callbacks=[bar, *callbacks])


def fit_hybrid(cfg, snet: SpikingNet, step, train, x_val, val: Callable[[SpikingEval], float], metric: str,
               quiet: bool, prepare=None) -> dict:
    """Hybrid fine-tuning with early stopping on ``val(SpikingEval of the validation inputs)``,
    the spiking net simulated for ``cfg.steps_eval`` steps before training (the converted
    net is the one to beat: it is kept if no epoch improves on it) and after every epoch."""
    last = {}

    def val_fn():
        ev = run_snn(snet, x_val, cfg.steps_eval, cfg.eval_batch, prepare=prepare)
        last["rate"] = ev.mean_rate
        return val(ev)

    bar = EpochBar("hybrid", cfg.hybrid_epochs, batches_of(len(train[0]), cfg.batch_size), quiet, f"val {metric}",
                   extra=lambda: {"rate Hz": last.get("rate", float("nan"))})
    return fit(snet, step, train, val_fn=val_fn, epochs=cfg.hybrid_epochs, batch_size=cfg.batch_size,
               lr=cfg.hybrid_lr, seed=cfg.seed + 1, patience=cfg.patience, mode="max", callbacks=[bar],
               validate_first=True)


def metric_vs_steps(steps, models: dict, x, measure: Callable[[np.ndarray], float], batch: int,
                    prepare=None, evals: dict | None = None) -> dict:
    """``{"steps": [...], name: [metric at each T]}`` for every spiking model in ``models``;
    ``measure`` scores raw readouts.  The readouts come from ``evals[name].outputs_at`` (runs
    already made on the same ``x``) where they hold that T, the others from one more run at
    the longest missing T (a run of T steps also gives every shorter run's readout)."""
    steps = sorted({int(T) for T in steps})
    curve = {"steps": steps}
    for name, model in models.items():
        have = dict(evals[name].outputs_at) if evals and name in evals else {}
        missing = [T for T in steps if T not in have]
        if missing:
            have.update(run_snn(model, x, missing[-1], batch, prepare=prepare, also_at=missing).outputs_at)
        curve[name] = [measure(have[T]) for T in steps]
    return curve


def write_figures(out, results: dict, metric: str, curve_key: str, inputs: str) -> dict:
    """The figures both apps draw: firing rates per layer (converted vs hybrid), validation
    ``metric`` per epoch (ANN, then hybrid) and the test ``metric`` against T.  Returns
    ``{figure key: file name}``."""
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
    c = results[curve_key]
    plots.line_chart(out / figs[curve_key], {"converted SNN": (c["steps"], c["converted"]),
                                             "hybrid SNN": (c["steps"], c["hybrid"])},
                     title=f"test {metric} against the presentation length T", xlabel="T (steps of 1 ms)",
                     ylabel=metric)
    return figs


def figure_sections(results: dict, titles: dict) -> list:
    """Markdown lines embedding the written figures, ``titles = {figure key: heading}``."""
    lines = []
    for key, title in titles.items():
        if key in results.get("figures", {}):
            lines += [f"## {title}", "", f"![{title}]({results['figures'][key]})", ""]
    return lines
