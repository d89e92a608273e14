"""What float32 LIF arithmetic changes: a saved net simulated at both precisions, side by side.

For a checkpoint written by ``minisnn-train loc|seg`` (``hybrid_snn.npz`` or ``ann.npz``), the
spiking net is simulated on the first ``--limit`` inputs of ``--data`` (default: the app's
synthetic set) in float64 (exact, Nengo's arithmetic) and in float32 (NengoDL's), alternately,
``--repeats`` times each.  The table gives, per spiking layer, the firing rate at both
precisions and their relative difference; the app's metric at both; and the wall time of a
whole evaluation at each precision with its CPU/wall, as a ratio measured in this run.  Only the
LIF has a float32 scan: for the CAE (spiking rectified-linear neurons) both columns are the
same computation.

    python benchmarks/bench_precision.py --checkpoint runs/loc/hybrid_snn.npz --limit 64
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import _common as C


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="hybrid_snn.npz or ann.npz of minisnn-train")
    p.add_argument("--data", type=Path, default=None, help="the app's data folder (default: its synthetic set)")
    p.add_argument("--limit", type=int, default=64, help="inputs simulated (the first N; default 64)")
    p.add_argument("--steps", type=int, default=None, help="T (default: the checkpoint's)")
    p.add_argument("--repeats", type=int, default=2, help="timed evaluations per precision (default 2)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba and BLAS (default 2)")
    p.add_argument("--json", default="bench_precision.json", help="result file in benchmarks/out/")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    C.use_minisnn_env()
    C.set_threads(args.threads)
    from minisnn.apps import pipeline
    from minisnn.hybrid import convert
    from minisnn.io import load_checkpoint

    state, meta = load_checkpoint(args.checkpoint)
    task_class = importlib.import_module(f"minisnn.apps.{meta['app']}").TASK
    task = task_class(task_class.Config.from_dict(meta["config"]))
    task.restore(meta)
    net = task.build()
    net.load_state_dict(state)
    x, y, description = task.everything(task.load(args.data, None, True))
    x, y = x[: args.limit], y[: args.limit]
    if task.name == "seg":  # whole subjects only: the Dice is per subject volume
        n = len(x) // task.depth * task.depth
        x, y = x[:n], y[:n]
    cfg, snn = task.cfg, meta.get("snn", {})
    T = args.steps or snn.get("steps", cfg.steps_eval)
    nets = {p: convert(net, synapse=snn.get("synapse", cfg.synapse), steps=T, dt=snn.get("dt", cfg.dt),
                       seed=snn.get("seed", cfg.seed), precision=p) for p in ("float64", "float32")}
    evals, times, cpu = {}, {p: [] for p in nets}, {p: [] for p in nets}
    pipeline.predict_snn(task, nets["float64"], x[: cfg.eval_batch], T)  # compile both scans first
    pipeline.predict_snn(task, nets["float32"], x[: cfg.eval_batch], T)
    for _ in range(args.repeats):
        for p, snet in nets.items():
            t0, c0 = time.perf_counter(), C.cpu_seconds()
            evals[p] = pipeline.predict_snn(task, snet, x, T)
            times[p].append(time.perf_counter() - t0)
            cpu[p].append(C.cpu_seconds() - c0)
    med = {p: statistics.median(v) for p, v in times.items()}
    scores = {p: task.score(ev.outputs, y)[task.metric] for p, ev in evals.items()}

    print(f"{args.checkpoint} ({meta.get('kind')}), {description}; the first {len(x)} inputs, T = {T}, "
          f"{args.threads} threads; load average {C.fmt_loadavg()}")
    rows = [[f"layer {k} ({evals['float64'].sizes[k]} neurons)", f"{r:.2f} Hz", f"{evals['float32'].rates[k]:.2f} Hz",
             f"{(evals['float32'].rates[k] - r) / r:+.2e}" if r else "-"] for k, r in evals["float64"].rates.items()]
    rows.append([f"{task.metric_label}", f"{scores['float64']:.4f}", f"{scores['float32']:.4f}",
                 f"{scores['float32'] - scores['float64']:+.4f}"])
    rows.append([f"evaluation wall s (median of {args.repeats})", f"{med['float64']:.2f}", f"{med['float32']:.2f}",
                 f"{med['float64'] / med['float32']:.2f}x faster"])
    rows.append(["CPU/wall", f"{sum(cpu['float64']) / sum(times['float64']):.2f}",
                 f"{sum(cpu['float32']) / sum(times['float32']):.2f}", ""])
    C.print_table(["", "float64", "float32", "float32 vs float64"], rows)
    out = C.write_json(args.json, {"benchmark": "bench_precision", "argv": sys.argv[1:], "T": T, "inputs": len(x),
                                   "rates_hz": {p: ev.rates for p, ev in evals.items()}, "metric": scores,
                                   "times_s": times, "machine": C.machine_info()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
