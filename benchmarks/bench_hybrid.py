#!/usr/bin/env python
"""One hybrid fine-tuning step on a LocNet-shaped net: time and peak RSS vs T.

For each T in --steps, and for the mean-rate mode (the default, memory of an ANN step) and the
per-step mode (unrolled over T, memory grows with T), one training step (simulate or unroll,
replay, backward, Adam) is run in a **fresh child process**, so ``ru_maxrss`` is the peak of that
step alone; an ANN training step (rate neurons, same net, same batch) is the reference.  Per-step
runs are skipped above --per-step-max-T or when the child exceeds --mem-limit-gb (reported as
"OOM").  Target: mean-rate peak RSS <= 1.3x the ANN step's at every T.

    python benchmarks/bench_hybrid.py [--batch 32] [--steps 25 50 100 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

RSS_TARGET = 1.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--height", type=int, default=100)
    p.add_argument("--width", type=int, default=150)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="timed steps per child (after one warm-up step)")
    p.add_argument("--per-step-max-T", type=int, default=50)
    p.add_argument("--mem-limit-gb", type=float, default=16.0)
    p.add_argument("--time-chunk", type=int, default=8, help="simulator time block (memory ~ block x batch)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def build(H, W, seed=0):
    """LocNet shape: [conv 3x3 -> stride-2 conv 3x3] x 3, dense 256-128-32-4 (soft-LIF hidden)."""
    import numpy as np

    import minisnn as ms
    from minisnn.layers import Neurons
    from minisnn.neurons import SoftLIFRate

    rng = np.random.default_rng(seed)
    layers, c_in, h, w = [], 3, H, W
    for c in (16, 32, 64):
        layers += [ms.Conv2d(c_in, c, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                   ms.Conv2d(c, c, 3, stride=2, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01))]
        c_in, h, w = c, (h + 1) // 2, (w + 1) // 2
    layers.append(ms.Flatten())
    sizes = [c_in * h * w, 256, 128, 32, 4]
    for i in range(4):
        layers.append(ms.Dense(sizes[i], sizes[i + 1], rng=rng))
        if i < 3:
            layers.append(Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)))
    net = ms.Sequential(*layers)
    for layer in net:
        if hasattr(layer, "b") and layer.b is not None:
            layer.b.data[:] = 2.0  # every layer fires
    return net


def child(args, kind: str, T: int) -> dict:
    import resource
    import time

    import numpy as np

    C.set_threads(args.threads)
    import minisnn as ms
    from minisnn import functional as F
    from minisnn.hybrid import convert, hybrid_loss
    from minisnn.train import ann_loss

    limit = int(args.mem_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    net = build(args.height, args.width)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.batch, 3, args.height, args.width)).astype(np.float32)
    y = rng.uniform(0, 1, (args.batch, 4)).astype(np.float32)
    if kind == "ann":
        model, step = net, (lambda: ann_loss(net, x, y, F.mse_loss)[0])
    else:
        model = convert(net, synapse=0.005, steps=T, time_chunk=args.time_chunk)
        mode = "mean" if kind == "mean-rate" else "per-step"
        step = lambda: hybrid_loss(model, x, y, F.mse_loss, mode=mode)[0]  # noqa: E731
    opt = ms.Adam(model.parameters(), lr=1e-3)
    times = []
    for r in range(args.repeats + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = step()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        del loss
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    return {"kind": kind, "T": T, "time_s": float(np.median(times[1:])), "peak_rss_mib": rss}


def run_child(args, kind, T):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{kind}:{T}", "--batch", str(args.batch),
           "--height", str(args.height), "--width", str(args.width), "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--time-chunk", str(args.time_chunk), "--mem-limit-gb", str(args.mem_limit_gb)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        oom = "MemoryError" in p.stderr or "Cannot allocate" in p.stderr
        return {"kind": kind, "T": T, "time_s": None, "peak_rss_mib": None,
                "error": "OOM" if oom else p.stderr.strip().splitlines()[-1] if p.stderr else f"rc {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    if args.child:
        kind, T = args.child.split(":")
        print(json.dumps(child(args, kind, int(T))))
        return
    rows = [run_child(args, "ann", 0)]
    ann_rss = rows[0]["peak_rss_mib"]
    for T in args.steps:
        rows.append(run_child(args, "mean-rate", T))
        if T <= args.per_step_max_T:
            rows.append(run_child(args, "per-step", T))
        else:
            rows.append({"kind": "per-step", "T": T, "time_s": None, "peak_rss_mib": None,
                         "error": f"skipped (T > {args.per_step_max_T})"})
    print(f"hybrid step, LocNet-shaped net {args.height}x{args.width}, batch {args.batch}, "
          f"{args.threads} threads (target: mean-rate peak RSS <= {RSS_TARGET}x ANN)")
    print(f"{'kind':<10} {'T':>4} {'time s':>8} {'peak RSS MiB':>13} {'x ANN':>6}")
    ok = True
    for r in rows:
        if r.get("peak_rss_mib") is None:
            print(f"{r['kind']:<10} {r['T']:>4} {'-':>8} {'-':>13} {'-':>6}  {r.get('error', '')}")
            continue
        ratio = r["peak_rss_mib"] / ann_rss
        if r["kind"] == "mean-rate" and ratio > RSS_TARGET:
            ok = False
        print(f"{r['kind']:<10} {r['T']:>4} {r['time_s']:>8.3f} {r['peak_rss_mib']:>13.0f} {ratio:>6.2f}")
    print("target met" if ok else "TARGET MISSED")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
