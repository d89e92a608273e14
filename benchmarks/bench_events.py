#!/usr/bin/env python
"""Event-driven vs dense convolution on spike maps: where does each win?

For the five LocNet convolutions that take spikes (conv2..conv6 of ``bench_snn.py``), on a
block of ``--images`` spike maps (time x batch in the simulator) with a given fraction of
nonzeros (the spike density: rate x dt, e.g. 170 Hz x 1 ms = 0.17), the script times

* ``dense``: ``conv2d_forward(..., out=, keep_cache=False)`` - im2col + GEMM, what the
  simulator runs on its dense path;
* ``event``: ``conv2d_events(..., out=, scale=)`` on the same spikes as a uint8 map, as the
  simulator's LIF scan writes them - every spike adds its weights to the outputs it reaches
  (:mod:`minisnn.kernels.events`) - in both orders: ``channels`` (channel by channel) and
  ``pixels`` (pixel by pixel, a pixel's channels summed in vector registers), and the pixel
  order on the map stored channels last, ``(N, H, W, C)``, its sums left channels last
  (``NHWC``: what the simulator runs between two such convolutions, no sorting, no transposes);

interleaved round by round (so a noisy spell on a shared machine hits all alike), and prints
the median times and the ratios dense/event (> 1: the event path is faster).  The crossovers
set ``minisnn.simulate.EVENT_DENSITY``, the threshold of ``simulate(path="auto")``,
``PIXEL_ORDER_EVENTS``, where the event path changes order (input channels x density), and
``PIXEL_ORDER_CHANNELS``, from which a channels-last input is read in pixel order at any density.

With ``--dense`` it times LocNet's Dense layers fed by spikes instead (fc1, whose inputs are
conv6's neurons, and fc2): ``dense_forward`` (the GEMM) against ``dense_events`` on the same
spikes as a uint8 map (:mod:`minisnn.kernels.dense_events`), ``--images`` rows (time x batch:
200 in the protocol's block of 50 steps x 4 inputs).  That sets ``DENSE_EVENT_DENSITY``.

    python benchmarks/bench_events.py
    python benchmarks/bench_events.py --densities 0.01 0.05 0.1 0.2 --images 25 --threads 2
    python benchmarks/bench_events.py --input 100x150 --widths 16 32 64   # the hybrid benchmark's net
    python benchmarks/bench_events.py --dense --input 100x150 --images 200 --densities 0.04 0.15 0.25 0.35
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

NAMES = ["conv2", "conv3", "conv4", "conv5", "conv6"]


def layers(H, W, widths):
    """(name, Cin, Cout, H, W, stride) of the LocNet convolutions fed by spikes (3x3, padding 1)
    for an input of H x W and the three stage widths."""
    a, b, c = widths
    h2, w2 = (H - 1) // 2 + 1, (W - 1) // 2 + 1
    h4, w4 = (h2 - 1) // 2 + 1, (w2 - 1) // 2 + 1
    return [("conv2", a, a, H, W, 2), ("conv3", a, b, h2, w2, 1), ("conv4", b, b, h2, w2, 2),
            ("conv5", b, c, h4, w4, 1), ("conv6", c, c, h4, w4, 2)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.08, 0.12, 0.17, 0.25],
                   help="fractions of nonzero inputs (default 0.01 .. 0.25)")
    p.add_argument("--images", type=int, default=25, help="spike maps per call, the simulator's block (default 25)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per point (default 3)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba and BLAS (default 2)")
    p.add_argument("--layers", nargs="+", default=NAMES, help="subset of conv2 .. conv6 (default all)")
    p.add_argument("--input", default="200x300", help="the net's input H x W (default 200x300, bench_snn's)")
    p.add_argument("--widths", type=int, nargs=3, default=[32, 64, 128],
                   help="the three stage widths (default 32 64 128, LocNet's; the hybrid benchmark's: 16 32 64)")
    p.add_argument("--dense", action="store_true",
                   help="time the Dense layers fed by spikes (fc1, fc2: GEMM against events) instead of the convs")
    p.add_argument("--json", default="bench_events.json", help="JSON output; a bare name goes to benchmarks/out/")
    a = p.parse_args(argv)
    if a.images < 1 or a.repeats < 1 or a.threads < 1:
        p.error("--images, --repeats and --threads must be >= 1")
    if any(not 0 < d <= 1 for d in a.densities):
        p.error("--densities must lie in (0, 1]")
    unknown = set(a.layers) - set(NAMES)
    if unknown:
        p.error(f"--layers: unknown {sorted(unknown)}; choose from conv2 .. conv6")
    try:
        a.H, a.W = (int(v) for v in a.input.lower().split("x"))
    except ValueError:
        a.H = a.W = 0
    if min(a.H, a.W) < 4:
        p.error(f"--input: expected HxW with H, W >= 4, got {a.input!r}")
    if any(w < 1 for w in a.widths):
        p.error("--widths must be >= 1")
    return a


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    C.use_minisnn_env()
    import numpy as np

    from minisnn import reuse_freed_memory
    from minisnn.ops import conv2d_events, conv2d_forward
    from minisnn.simulate import EVENT_DENSITY, PIXEL_ORDER_CHANNELS, PIXEL_ORDER_EVENTS

    reuse_freed_memory()  # as minisnn-train does
    C.set_threads(args.threads)
    if args.dense:
        return main_dense(args)
    rng = np.random.default_rng(0)
    rows, records = [], []
    for name, cin, cout, H, W, stride in layers(args.H, args.W, args.widths):
        if name not in args.layers:
            continue
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.01).astype(np.float32)
        Ho, Wo = (H - 1) // stride + 1, (W - 1) // stride + 1
        y_dense = np.zeros((args.images, cout, Ho, Wo), np.float32)
        y_event = {order: np.zeros_like(y_dense) for order in ("channels", "pixels")}
        y_last = np.zeros((args.images, Ho, Wo, cout), np.float32)
        for d in args.densities:
            print(f"  .. {name} density {d}", file=sys.stderr, flush=True)
            spikes = (rng.random((args.images, cin, H, W), dtype=np.float32) < d).astype(np.uint8)
            s = spikes * np.float32(1000.0)  # the float map the dense path convolves
            spikes_last = np.ascontiguousarray(spikes.transpose(0, 2, 3, 1))
            fns = {
                "dense": lambda: conv2d_forward(s, w, None, stride, 1, out=y_dense, keep_cache=False),
                **{order: (lambda order=order: conv2d_events(spikes, w, None, stride, 1, out=y_event[order],
                                                             scale=1000.0, order=order))
                   for order in ("channels", "pixels")},
                "NHWC": lambda: conv2d_events(spikes_last, w, None, stride, 1, out=y_last, scale=1000.0, order="pixels",
                                              in_layout="NHWC", out_layout="NHWC"),
            }
            t = C.interleaved_samples(fns, repeats=args.repeats, warmup=1)
            scale = max(np.abs(y_dense).max(), 1e-30)
            err = max(float(np.abs(y_dense - y).max() / scale) for y in [*y_event.values(), y_last.transpose(0, 3, 1, 2)])
            td, tc, tp, tl = (statistics.median(t[k]) for k in ("dense", "channels", "pixels", "NHWC"))
            best = min((td, "dense"), (tc, "event, channels"), (tp, "event, pixels"), (tl, "event, pixels NHWC"))[1]
            rows.append([name, f"{cin}->{cout} s{stride}", d, td, tc, tp, tl, td / tc, td / tp, td / tl, best, err])
            records.append(dict(layer=name, cin=cin, cout=cout, H=H, W=W, stride=stride, density=d,
                                dense_s=t["dense"], event_s=t["channels"], event_pixels_s=t["pixels"],
                                event_pixels_nhwc_s=t["NHWC"], rel_err=err))
    print(f"\nconvolution of {args.images} spike maps (3x3, padding 1, float32), median of {args.repeats} "
          f"interleaved rounds, {args.threads} threads; ratio = dense / event (> 1: event path faster)")
    C.print_table(["layer", "channels", "density", "dense s", "channels s", "pixels s", "NHWC s", "ratio channels",
                   "ratio pixels", "ratio NHWC", "fastest", "max rel diff"], rows, "llrrrrrrrrlr")
    for d in args.densities:
        for k, order in ((7, "channels"), (8, "pixels"), (9, "NHWC")):
            ratios = [r[k] for r in rows if r[2] == d]
            if ratios:
                print(f"  density {d:<5} {order:8}: geometric-mean ratio {float(np.exp(np.mean(np.log(ratios)))):.2f}")
    print(f"simulate(path='auto') uses the event path below density {EVENT_DENSITY} "
          f"(minisnn.simulate.EVENT_DENSITY), in pixel order from {PIXEL_ORDER_EVENTS} events per input pixel "
          f"(channels x density, PIXEL_ORDER_EVENTS), and from {PIXEL_ORDER_CHANNELS} input channels where the input "
          f"can be stored channels last (PIXEL_ORDER_CHANNELS)")
    print("machine: " + C.format_machine_info(C.machine_info()) + f"; load average now {C.fmt_loadavg()}")
    path = C.write_json(args.json, {"benchmark": "bench_events", "options": vars(args), "results": records,
                                    "event_density": EVENT_DENSITY, "pixel_order_events": PIXEL_ORDER_EVENTS,
                                    "pixel_order_channels": PIXEL_ORDER_CHANNELS,
                                    "machine": C.machine_info()})
    print(f"wrote {os.path.relpath(path)}")


def main_dense(args):
    """``--dense``: fc1 and fc2 of the LocNet for ``--input`` and ``--widths``, GEMM against events."""
    import numpy as np

    from minisnn.ops.dense import dense_events, dense_forward
    from minisnn.simulate import DENSE_EVENT_DENSITY, DENSE_EVENT_INPUTS

    rng = np.random.default_rng(0)
    *_, (_, _, c6, h5, w5, _) = layers(args.H, args.W, args.widths)
    fc1_in = c6 * ((h5 - 1) // 2 + 1) * ((w5 - 1) // 2 + 1)  # conv6's neurons, flattened
    rows, records = [], []
    for name, n_in, n_out in (("fc1", fc1_in, 512), ("fc2", 512, 256)):
        w = (rng.standard_normal((n_out, n_in)) * 0.01).astype(np.float32)
        y_gemm = np.zeros((args.images, n_out), np.float32)
        y_event = np.zeros_like(y_gemm)
        for d in args.densities:
            print(f"  .. {name} density {d}", file=sys.stderr, flush=True)
            spikes = (rng.random((args.images, n_in), dtype=np.float32) < d).astype(np.uint8)
            s = spikes * np.float32(1000.0)  # the float map the GEMM multiplies
            fns = {"gemm": lambda: dense_forward(s, w, None, out=y_gemm),
                   "event": lambda: dense_events(spikes, w, None, out=y_event, scale=1000.0)}
            t = C.interleaved_samples(fns, repeats=args.repeats, warmup=1)
            err = float(np.abs(y_gemm - y_event).max() / max(np.abs(y_gemm).max(), 1e-30))
            tg, te = statistics.median(t["gemm"]), statistics.median(t["event"])
            rows.append([name, f"{n_in}->{n_out}", d, tg, te, tg / te, "event" if te < tg else "gemm", err])
            records.append(dict(layer=name, inputs=n_in, outputs=n_out, density=d, gemm_s=t["gemm"],
                                event_s=t["event"], rel_err=err))
    print(f"\nDense layers fed by spikes: {args.images} rows (float32), median of {args.repeats} interleaved rounds, "
          f"{args.threads} threads; ratio = GEMM / event (> 1: event path faster)")
    C.print_table(["layer", "shape", "density", "GEMM s", "event s", "ratio", "fastest", "max rel diff"], rows,
                  "llrrrrlr")
    print(f"simulate(path='auto') uses the event path for a Dense layer of {DENSE_EVENT_INPUTS} inputs or more "
          f"(minisnn.simulate.DENSE_EVENT_INPUTS) below density {DENSE_EVENT_DENSITY} (DENSE_EVENT_DENSITY)")
    print("machine: " + C.format_machine_info(C.machine_info()) + f"; load average now {C.fmt_loadavg()}")
    path = C.write_json(args.json, {"benchmark": "bench_events", "mode": "dense", "options": vars(args),
                                    "results": records, "dense_event_density": DENSE_EVENT_DENSITY,
                                    "dense_event_inputs": DENSE_EVENT_INPUTS, "machine": C.machine_info()})
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
