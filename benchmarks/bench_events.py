#!/usr/bin/env python
"""Event-driven vs dense convolution on spike maps: where does each win?

For the five LocNet convolutions that take spikes (conv2..conv6 of ``bench_snn.py``), on a
block of ``--images`` spike maps (time x batch in the simulator) with a given fraction of
nonzeros (the spike density: rate x dt, e.g. 170 Hz x 1 ms = 0.17), the script times

* ``dense``: ``conv2d_forward(..., out=, keep_cache=False)`` - im2col + GEMM, what the
  simulator runs on its dense path;
* ``event``: ``conv2d_events(..., out=, scale=)`` on the same spikes as a uint8 map, as the
  simulator's LIF scan writes them - every spike adds its weights to the outputs it reaches
  (:mod:`minisnn.kernels.events`);

interleaved round by round (so a noisy spell on a shared machine hits both alike), and prints
the median times and the ratio dense/event (> 1: the event path is faster).  The crossover
sets ``minisnn.simulate.EVENT_DENSITY``, the threshold of ``simulate(path="auto")``.

    python benchmarks/bench_events.py
    python benchmarks/bench_events.py --densities 0.01 0.05 0.1 0.2 --images 25 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# (name, Cin, Cout, H, W, stride) of the LocNet convolutions fed by spikes (3x3, padding 1)
LAYERS = [("conv2", 32, 32, 200, 300, 2), ("conv3", 32, 64, 100, 150, 1), ("conv4", 64, 64, 100, 150, 2),
          ("conv5", 64, 128, 50, 75, 1), ("conv6", 128, 128, 50, 75, 2)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.08, 0.12, 0.17, 0.25],
                   help="fractions of nonzero inputs (default 0.01 .. 0.25)")
    p.add_argument("--images", type=int, default=25, help="spike maps per call, the simulator's block (default 25)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per point (default 3)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba and BLAS (default 2)")
    p.add_argument("--layers", nargs="+", default=[name for name, *_ in LAYERS],
                   help="subset of conv2 .. conv6 (default all)")
    p.add_argument("--json", default="bench_events.json", help="JSON output; a bare name goes to benchmarks/out/")
    a = p.parse_args(argv)
    if a.images < 1 or a.repeats < 1 or a.threads < 1:
        p.error("--images, --repeats and --threads must be >= 1")
    if any(not 0 < d <= 1 for d in a.densities):
        p.error("--densities must lie in (0, 1]")
    unknown = set(a.layers) - {name for name, *_ in LAYERS}
    if unknown:
        p.error(f"--layers: unknown {sorted(unknown)}; choose from conv2 .. conv6")
    return a


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    C.use_minisnn_env()
    import numpy as np

    from minisnn import reuse_freed_memory
    from minisnn.ops import conv2d_events, conv2d_forward
    from minisnn.simulate import EVENT_DENSITY

    reuse_freed_memory()  # as minisnn-train does
    C.set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, records = [], []
    for name, cin, cout, H, W, stride in LAYERS:
        if name not in args.layers:
            continue
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.01).astype(np.float32)
        Ho, Wo = (H - 1) // stride + 1, (W - 1) // stride + 1
        y_dense = np.zeros((args.images, cout, Ho, Wo), np.float32)
        y_event = np.zeros_like(y_dense)
        for d in args.densities:
            print(f"  .. {name} density {d}", file=sys.stderr, flush=True)
            spikes = (rng.random((args.images, cin, H, W), dtype=np.float32) < d).astype(np.uint8)
            s = spikes * np.float32(1000.0)  # the float map the dense path convolves
            fns = {
                "dense": lambda: conv2d_forward(s, w, None, stride, 1, out=y_dense, keep_cache=False),
                "event": lambda: conv2d_events(spikes, w, None, stride, 1, out=y_event, scale=1000.0),
            }
            t = C.interleaved_samples(fns, repeats=args.repeats, warmup=1)
            err = float(np.abs(y_dense - y_event).max() / max(np.abs(y_dense).max(), 1e-30))
            td, te = statistics.median(t["dense"]), statistics.median(t["event"])
            rows.append([name, f"{cin}->{cout} s{stride}", d, td, te, td / te, "event" if te < td else "dense", err])
            records.append(dict(layer=name, cin=cin, cout=cout, H=H, W=W, stride=stride, density=d,
                                dense_s=t["dense"], event_s=t["event"], rel_err=err))
    print(f"\nconvolution of {args.images} spike maps (3x3, padding 1, float32), median of {args.repeats} "
          f"interleaved rounds, {args.threads} threads; ratio = dense / event (> 1: event path faster)")
    C.print_table(["layer", "channels", "density", "dense s", "event s", "ratio", "faster", "max rel diff"],
                  rows, "llrrrrlr")
    for d in args.densities:
        ratios = [r[5] for r in rows if r[2] == d]
        if ratios:
            print(f"  density {d:<5}: geometric-mean ratio {float(np.exp(np.mean(np.log(ratios)))):.2f}")
    print(f"simulate(path='auto') uses the event path below density {EVENT_DENSITY} "
          f"(minisnn.simulate.EVENT_DENSITY)")
    print("machine: " + C.format_machine_info(C.machine_info()) + f"; load average now {C.fmt_loadavg()}")
    path = C.write_json(args.json, {"benchmark": "bench_events", "options": vars(args), "results": records,
                                    "event_density": EVENT_DENSITY, "machine": C.machine_info()})
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
