#!/usr/bin/env python
"""Data parallelism over MPI (issue 19): processes x threads on this machine.

For LocNet and the CAE at their paper presets' sizes (``apps/loc.py``, ``apps/seg.py``:
LocNet 3x200x300, widths 8-16-32, dense 128-64-16, batch 32; the CAE on 1x56x48 slices, widths
8-16-32, batch 32) it measures, each in a child of its own (``_common.spawn``; the two-process
cases under ``mpirun -n 2``):

* ``train`` - one ANN training step of the global batch as ``minisnn-train`` takes it
  (:func:`minisnn.train.fit`'s step: each process its share of the batch forward and backward,
  ONE allreduce of the flat gradient buffer, Adam), images/s;
* ``snn`` - the spiking evaluation as ``minisnn-train`` runs it
  (:func:`minisnn.apps.common.run_snn`: each process its share of the batches, gathered), at the
  preset's long T (LocNet 80, the CAE 30), images/s;

at **1 process x 1 thread**, **1 process x 2 threads** and **2 processes x 1 thread** (--configs),
with the parallel efficiency of the two 2-core configurations (images/s over twice the 1 x 1
images/s) and, for the 2-process training step, the time per step spent in the allreduce (its
wall time, waiting for the slower process included) and the same allreduce alone (the buffer
reduced 20 times, each after a barrier: the median, the communication itself), with the buffer's size (the
parameters' bytes, the loss terms and one flag per tensor).

    python benchmarks/bench_mpi.py                  # ~5 min on 2 busy cores
    python benchmarks/bench_mpi.py --quick          # the tiny presets' nets: a smoke test
    python benchmarks/bench_mpi.py --work train --nets cae
    python benchmarks/bench_mpi.py --work train --configs 1x1 --batches 1 2 4 8 16 32   # compute vs share

Without mpirun or mpi4py (``pip install -e '.[mpi]'``) the two-process rows say so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

CONFIGS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # processes x threads
NETS = ("loc", "cae")
WORK = ("train", "snn")
LABEL = {"loc": "LocNet", "cae": "CAE"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    p.add_argument("--work", nargs="+", choices=WORK, default=list(WORK))
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                   help="processes x threads (default: all three)")
    p.add_argument("--quick", action="store_true", help="the tiny presets' nets and sizes (a smoke test)")
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="global batch sizes of the training step (default: the preset's, 32); e.g. 1 2 4 8 16 32 "
                        "with --configs 1x1 measures the compute per step against a process's share")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed steps or evaluations per case (default: 3 training steps, 2 evaluations)")
    p.add_argument("--warmup", type=int, default=1, help="untimed ones first (default 1)")
    p.add_argument("--snn-images", type=int, default=None,
                   help="inputs per timed evaluation (default: 2 evaluation batches, one per process: LocNet "
                        "16, CAE 128)")
    p.add_argument("--threads", type=int, default=2,
                   help="the machine's cores to share (run_all passes its --threads; default 2)")
    p.add_argument("--no-torch", action="store_true", help=argparse.SUPPRESS)  # run_all passes it; no peer here
    p.add_argument("--json", default="bench_mpi.json",
                   help="JSON output; a bare file name goes to benchmarks/out/ (default bench_mpi.json)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: work:net:processes:threads:batch
    a = p.parse_args(argv)
    if (a.repeats is not None and a.repeats < 1) or a.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if a.batches is not None and min(a.batches) < 1:
        p.error("--batches must be >= 1")
    return a


def mpirun() -> str | None:
    """mpirun beside this Python (the [mpi] extra's wheel) or on PATH, if mpi4py is there too."""
    import importlib.util

    if importlib.util.find_spec("mpi4py") is None:
        return None
    return shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")


# ----------------------------------------------------------------------------- the child


def _config(net: str, quick: bool):
    if net == "loc":
        from minisnn.apps import loc

        return loc, loc.make_config("tiny" if quick else "paper")
    from minisnn.apps import seg

    return seg, seg.make_config("tiny" if quick else "paper")


def _data(net: str, cfg, n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    if net == "loc":
        x = rng.standard_normal((n, 3, *cfg.size)).astype(np.float32)
        y = np.sort(rng.random((n, 4)).astype(np.float32), axis=1)
        return x, y
    x = rng.standard_normal((n, 1, 56, 48)).astype(np.float32)
    return x, (rng.random((n, 1, 56, 48)) < 0.2).astype(np.float32)


def child(role: str, job: dict) -> dict:
    """One case: ``role`` = ``work:net:processes:threads:batch`` (batch 0: the preset's); every
    process of the case runs it."""
    work, net, procs, threads, batch = role.split(":")
    args = argparse.Namespace(**job)
    from minisnn.runtime import set_threads

    set_threads(int(threads))  # as the environment the parent gave: OpenBLAS read it at start
    import numpy as np

    from minisnn.kernels import warmup

    warmup()
    import minisnn as ms

    ms.reuse_freed_memory()  # as minisnn-train does
    from minisnn.parallel import world

    comm = world()
    assert comm.size == int(procs), f"expected {procs} processes, got {comm.size}"
    module, cfg = _config(net, args.quick)
    build = module.build_locnet if net == "loc" else module.build_cae
    model = build(cfg)
    result = {"work": work, "net": net, "processes": comm.size, "threads": int(threads)}
    if work == "train":
        B = int(batch) or cfg.batch_size
        x, y = _data(net, cfg, B)
        result.update(_train(net, model, x, y, comm, args))
        result["images"] = B
    else:
        from minisnn.apps.common import run_snn
        from minisnn.hybrid import convert

        n = args.snn_images or (2 * cfg.eval_batch)
        x, _ = _data(net, cfg, n)
        snet = convert(model, synapse=cfg.synapse, steps=cfg.steps_eval, dt=cfg.dt, seed=cfg.seed)
        for _ in range(args.warmup):
            run_snn(snet, x, cfg.steps_eval, cfg.eval_batch)
        r = C.time_steps(lambda: run_snn(snet, x, cfg.steps_eval, cfg.eval_batch), 0, args.repeats)
        result.update(r, images=n, steps=cfg.steps_eval, eval_batch=cfg.eval_batch)
    result["seconds"] = result["median_s"]
    result["images_per_s"] = result["images"] / result["median_s"]
    del np
    return result


def _train(net, model, x, y, comm, args) -> dict:
    """Time fit's step on the global batch ``x`` (:class:`minisnn.train._GradientSum` under
    several processes, the one-process step otherwise); the allreduce's time per step."""
    import numpy as np

    from minisnn import functional as F
    from minisnn.apps.common import on_part
    from minisnn.apps.seg import seg_loss
    from minisnn.optim import Adam
    from minisnn.train import _GradientSum, ann_loss

    params = list(model.parameters())
    opt = Adam(params, lr=1e-3)
    if net == "loc":
        step_fn = on_part(lambda xb, yb, first: ann_loss(model, xb, yb, F.mse_loss))
    else:
        step_fn = on_part(lambda xb, yb, first: seg_loss(model(xb), yb))
    idx = np.arange(len(x))
    summed = _GradientSum(comm, params) if comm.size > 1 else None

    def step():
        opt.zero_grad()
        if summed is not None:
            summed.step(step_fn, x, y, idx)
        else:
            result = step_fn(x, y)
            (result[0] if isinstance(result, tuple) else result).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    comm.reduce_seconds, comm.reduce_calls = 0.0, 0
    r = C.time_steps(step, 0, args.repeats)
    out = dict(r, param_bytes=int(sum(p.data.nbytes for p in params)), parameters=int(sum(p.data.size for p in params)))
    if summed is not None:
        out["allreduce_s_per_step"] = comm.reduce_seconds / max(comm.reduce_calls, 1)
        out["buffer_bytes"] = int(summed.buf.nbytes)
        alone = []
        for _ in range(20):
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce(summed.buf)
            alone.append(time.perf_counter() - t0)
        out["allreduce_alone_s"] = float(np.median(alone))
    return out


# ----------------------------------------------------------------------------- the parent


def run_case(args, work, net, config, launcher, batch=0) -> dict:
    procs, threads = CONFIGS[config]
    base = {"work": work, "net": net, "config": config, "processes": procs, "threads": threads}
    if procs > 1 and launcher is None:
        return {**base, "images": batch or None, "error": "no mpirun / mpi4py (pip install -e '.[mpi]')"}
    env = C.minisnn_env()
    env.update({v: str(threads) for v in C.THREAD_ENV_VARS})
    job = {**vars(args), "worker": None, "repeats": args.repeats or (3 if work == "train" else 2)}
    r = C.spawn(__file__, f"{work}:{net}:{procs}:{threads}:{batch}", job, env,
                launcher=[launcher, "-n", str(procs)] if procs > 1 else ())
    return {**base, **r}


def efficiency(rows, work, net, config, images):
    """Images/s of ``config`` over (2 x images/s of 1 process x 1 thread on the same batch)."""
    def ips(c):
        r = next((r for r in rows if (r["work"], r["net"], r["config"], r.get("images")) == (work, net, c, images)
                  and "error" not in r), None)
        return r and r["images_per_s"]

    one, this = ips("1x1"), ips(config)
    workers = CONFIGS[config][0] * CONFIGS[config][1]
    return this / (workers * one) if one and this and workers > 1 else None


def main(argv=None):
    args = parse_args(argv)
    if args.worker:  # the thread counts come from the environment the parent gave the child
        return C.worker_main(args.worker, child)
    t_start = time.perf_counter()
    launcher = mpirun()
    print(f"data parallelism over MPI: processes x threads on {os.cpu_count()} cores, each case in its own child "
          f"({'mpirun: ' + launcher if launcher else 'no mpirun/mpi4py: 1-process cases only'}); load average "
          f"{C.fmt_loadavg()}", flush=True)
    rows = []
    for work in args.work:
        for net in args.nets:
            for batch in (args.batches or [0]) if work == "train" else [0]:
                for config in args.configs:
                    print(f"  .. {work} {net} {config}" + (f" batch {batch}" if batch else ""), file=sys.stderr,
                          flush=True)
                    rows.append(run_case(args, work, net, config, launcher, batch))
    for r in rows:
        if "error" not in r:
            r["efficiency"] = efficiency(rows, r["work"], r["net"], r["config"], r["images"])

    headers = ["work", "net", "procs x threads", "batch/images", "s", "images/s", "efficiency", "allreduce ms/step",
               "allreduce alone ms", "buffer MiB", "note"]
    table = []
    for r in rows:
        case = [r["work"], LABEL[r["net"]], r["config"]]
        if "error" in r:
            table.append(case + [None] * 7 + [r["error"]])
            continue
        ar = r.get("allreduce_s_per_step")
        alone = r.get("allreduce_alone_s")
        buf = r.get("buffer_bytes")
        what = f"T={r['steps']}" if r["work"] == "snn" else ""
        table.append(case + [r["images"], r["seconds"], r["images_per_s"], r.get("efficiency"),
                             ar * 1e3 if ar is not None else None, alone * 1e3 if alone is not None else None,
                             buf / 2**20 if buf else None, what])
    print("train = one ANN training step of the global batch (forward, backward, the allreduce, Adam); snn = the "
          "spiking evaluation of the images; s = median of the timed ones; efficiency = images/s / (2 x images/s "
          "at 1x1); allreduce ms/step = its wall time within the step (waiting for the slower process included)")
    C.print_table(headers, table, "lllrrrrrrrl")
    elapsed = time.perf_counter() - t_start
    info = C.machine_info()
    payload = {"benchmark": "bench_mpi", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:],
               "options": vars(args), "launcher": launcher, "rows": rows, "machine": info, "elapsed_s": elapsed}
    path = C.write_json(args.json, payload)
    print(f"total {elapsed:.0f} s; wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
