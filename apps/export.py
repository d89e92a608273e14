"""The command line ``minisnn-export nir CHECKPOINT OUT.nir``: a trained spiking net as a NIR graph.

It rebuilds the net of a checkpoint written by ``minisnn-train`` (``ann.npz`` or
``hybrid_snn.npz``; the task, config and simulation settings are in its metadata), converts it
as the pipeline does (:func:`minisnn.hybrid.convert`) and writes it with
:func:`minisnn.interchange.to_nir` (HDF5, time constants in seconds), atomically.

What NIR cannot hold is refused with one line unless dropped on purpose: a LIF refractory
period (``--drop-refractory``) and the LIF voltage floor at 0 (``--drop-voltage-floor``).  When
something is dropped the command measures what it costs: the task's metric of the net as
exported (read back from the file and simulated here) against the checkpoint's own net, on
the test split of the synthetic set the checkpoint's config generates, or on every input of
``--data``.  The CAE (``minisnn-train seg``) is refused: NIR has no transposed convolution.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from .cli import _OUT_OF_MEMORY, _OneLineErrors, _default_cache, _fail, _one_line, _start


@click.group(cls=_OneLineErrors, help="Export trained minisnn nets to other formats.")
def export_main():
    pass


@export_main.command("nir")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--drop-refractory", is_flag=True,
              help="Export LIF neurons with a refractory period (tau_ref > 0; minisnn-train loc's default 0.002 s) "
                   "without it: NIR's LIF has none. The command then measures and prints what that costs. "
                   "Without the flag such a net is refused; train with --tau-ref 0 to export one exactly.")
@click.option("--drop-voltage-floor", is_flag=True,
              help="Export LIF neurons without their voltage floor (minisnn's LIF, as Nengo's, never lets the "
                   "voltage fall below 0; NIR's LIF has no floor). The command then measures and prints what that "
                   "costs. Without the flag such a net is refused.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Measure the cost of what was dropped on every input of this folder (the layouts minisnn-train "
                   "reads). Default: the test split of the synthetic set the checkpoint's config generates.")
@click.option("--steps", type=int, default=None,
              help="T of the cost measurement (default: the checkpoint's long evaluation T).")
@click.option("--overwrite", is_flag=True, help="Replace OUT.nir if it exists (without it an existing file is kept).")
@click.option("--threads", type=int, default=None, help="CPU threads for BLAS and Numba (default: all).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def export_nir(checkpoint, out, drop_refractory, drop_voltage_floor, data_dir, steps, overwrite, threads, quiet):
    """Write the spiking net of CHECKPOINT (ann.npz or hybrid_snn.npz from minisnn-train) to OUT.nir.

    The net is converted as minisnn-train converts it (LIF neurons, the checkpoint's Lowpass
    synapse) and written as a NIR graph (HDF5; nir.read reads it): Conv2d -> Conv2d, Dense ->
    Affine, Flatten -> Flatten, AvgPool2d -> AvgPool2d, LIF -> LIF (r = the layer's gain), the
    synapse -> LI (r = the spike amplitude). Time constants are in seconds; the graph's metadata
    holds dt and time_unit "s". Refused, with one line: a refractory period or a voltage floor
    without the flag that drops it, and transposed convolutions (the CAE), which NIR lacks.
    """
    _start(threads)
    if steps is not None and steps < 1:
        _fail(f"--steps must be >= 1, got {steps}")
    if data_dir is not None and not data_dir.is_dir():
        _fail(f"--data {data_dir}: no such folder")
    if out.exists() and not overwrite:
        _fail(f"{out} exists; give --overwrite to replace it")
    if not out.parent.is_dir():
        _fail(f"{out}: the folder {out.parent} does not exist")
    try:
        _export(checkpoint, out, drop_refractory, drop_voltage_floor, data_dir, steps, quiet)
    except ImportError as e:
        _fail(_one_line(e))
    except (ValueError, OSError) as e:
        _fail(_one_line(e))
    except MemoryError:
        _fail(_OUT_OF_MEMORY)


def _export(checkpoint, out, drop_refractory, drop_voltage_floor, data_dir, steps, quiet):
    from ..hybrid import convert
    from ..interchange import NIRError, from_nir, to_nir, write_nir
    from ..io import load_checkpoint

    state, meta = load_checkpoint(checkpoint)
    app = meta.get("app")
    if app not in ("loc", "seg"):
        raise ValueError(f"{checkpoint}: not a minisnn-train checkpoint (app {app!r}; expected 'loc' or 'seg')")
    task_class = importlib.import_module(f"{__package__}.{app}").TASK
    task = task_class(task_class.Config.from_dict(meta["config"]))
    task.restore(meta)
    cfg = task.cfg
    net = task.build()
    net.load_state_dict(state)
    snn = meta.get("snn", {})
    T = steps if steps is not None else cfg.steps_eval
    snet = convert(net, synapse=snn.get("synapse", cfg.synapse), steps=T, dt=snn.get("dt", cfg.dt),
                   seed=snn.get("seed", cfg.seed), precision=snn.get("precision", cfg.precision))
    try:
        graph = to_nir(snet, _input_shape(app, cfg, meta), drop_refractory=drop_refractory,
                       drop_voltage_floor=drop_voltage_floor,
                       metadata={"app": app, "kind": str(meta.get("kind")), "checkpoint": Path(checkpoint).name})
    except NIRError as e:
        raise NIRError(f"{checkpoint}: {e}") from None
    write_nir(graph, out)
    lif = [layer.spiking_model for _, layer in snet.neuron_layers()]
    click.echo(f"wrote {out}: {len(graph.nodes)} NIR nodes ({len(lif)} spiking layers, synapse LI tau "
               f"{snet.synapse} s), time constants in seconds, dt = {snet.dt} s")
    dropped = []
    if any(getattr(m, "tau_ref", 0) > 0 for m in lif):
        dropped.append(f"the refractory period (tau_ref {max(m.tau_ref for m in lif):g} s)")
    if any(getattr(m, "min_voltage", None) is not None and m.min_voltage > -1e300 for m in lif):
        dropped.append(f"the voltage floor (min_voltage {max(m.min_voltage for m in lif):g})")
    if dropped:
        exported = from_nir(out, steps=T, seed=snet.seed)
        click.echo(_cost_line(task, snet, exported, dropped, data_dir, T, quiet))


def _input_shape(app, cfg, meta) -> tuple:
    """The shape of one input of the app's net (no batch axis)."""
    if app == "loc":
        return (3, *cfg.size)
    crop = meta.get("crop")
    return (1, *crop[1:]) if crop else (1, 1, 1)  # the CAE is refused for its transposed convolutions first


def _cost_line(task, original, exported, dropped, data_dir, T, quiet) -> str:
    """Measure the task's metric of the original net and of the net as exported (and, when
    both the refractory period and the floor are dropped, of the net without the refractory
    period only) on the test split or on --data: the lines to print."""
    import copy

    from ..neurons import LIF
    from .pipeline import predict_snn

    data = task.load(data_dir, _default_cache() / task.name if data_dir is not None else None, quiet)
    if data_dir is None:
        norm = task.norm
        split = task.split(data)
        task.norm = norm  # the checkpoint's normalizer, not one fitted again
        x, y, where = split.x_test, split.y_test, f"the {len(split.x_test)} test images of {data.source}"
    else:
        x, y, _ = task.everything(data)
        where = f"all {len(x)} inputs of {data_dir}"
    nets = [("original", original)]
    if len(dropped) == 2:  # the two costs apart: without the refractory period first, then without the floor
        no_ref = copy.deepcopy(original)
        for _, layer in no_ref.neuron_layers():
            if isinstance(layer.model, LIF):
                layer.model = layer.model.replace(tau_ref=0.0)
        nets.append(("tau_ref 0", no_ref))
    nets.append(("as exported", exported))
    scores = []
    for label, snet in nets:
        ev = predict_snn(task, snet, x, T, label, quiet)
        scores.append((label, task.score(ev.outputs, y)[task.metric], ev.mean_rate))
    lines = [f"cost of dropping {' and '.join(dropped)} on {where}, T = {T}:"]
    a = scores[0][1]
    lines += [f"  {label:12s} {task.metric_label} {m:.4f} ({m - a:+.4f}), mean rate {hz:.1f} Hz"
              for label, m, hz in scores]
    return "\n".join(lines)


main = export_main

if __name__ == "__main__":  # pragma: no cover
    export_main()
