#!/usr/bin/env python
"""Spiking inference of a LocNet-shaped LIF network: minisnn's simulator vs snnTorch.

The network (input 3x200x300, float32)::

    conv3x3 p1: 3->32 s1, 32->32 s2, 32->64 s1, 64->64 s2, 64->128 s1, 128->128 s2
    (each followed by LIF neurons), Flatten, dense 121600->512, 512->256, 256->64
    (each followed by LIF neurons), dense 64->4 (linear readout)

(``--input HxW`` shrinks the image for smoke tests; fc1's fan-in follows.)

Weights are He-normal, then every spiking layer's weights are scaled and a bias added so
that the firing rates are realistic (100-250 Hz per layer): chosen layer by layer on the
LIFRate twin, then checked (and corrected) with short minisnn runs (``--calib-images``
images, ``--calib-steps`` steps).  The measured rates are printed.  Inputs are seeded random
images in [0, 1).

For each T in ``--steps`` the script runs, each in its own child process (so the peak RSS
``ru_maxrss`` is that configuration's alone):

* minisnn ``simulate`` (``--path``, Lowpass synapse 0.005 on every spiking layer,
  ``time_chunk`` x ``batch_chunk`` blocks, ``--precision``);
* snnTorch, the leanest twin a user would write: ``snn.Leaky(beta, init_hidden=True,
  reset_mechanism="zero")`` with beta = exp(-dt/tau_rc), the usual time-major loop under
  ``torch.no_grad()``, nothing recorded while it is timed (its firing rates come from a
  separate run of at most ``RATE_STEPS`` steps); no refractory period, no sub-step spike
  time and no synapse - snnTorch's neuron does less per step than minisnn's - with the same
  weights, converted to its units (see ``torch_weights``).

Both are warmed up on the whole batch before they are timed: snnTorch for one step (its
tensors are allocated), minisnn for one time block of ``time_chunk`` steps (its block buffers
are; the JSON keeps that call's time as ``warm_up_s``: cold, the first touch of up to ~1 GB
of buffers is page faults, 1.3-2.4x the steady time on the protocol).  Then each times
``--repeats`` calls and reports the best; with ``--rounds`` each engine runs that many
children, the two engines' children in turn, and its fastest child counts.  A user simulating
batch after batch gets the timed speed from the second call on.  The batch-32 memory probes run
cold on both sides.

It reports images/s, peak RSS and the ratios minisnn/snnTorch, the targets of issue 3, a
peak-RSS (and speed) probe at batch 32 when the main run uses a smaller batch, minisnn at
other block sizes (``--chunk-sweep``), and a timer breakdown of one minisnn run (conv GEMMs,
im2col, LIF kernel, ...).  Rows whose process got less than 0.75 x ``--threads`` CPU-seconds
per second are flagged as contended: on a shared machine compare only clean rows.

    python benchmarks/bench_snn.py                 # auto batch: fits --budget-min (20 min)
    python benchmarks/bench_snn.py --full          # batch 32 (takes much longer)
    python benchmarks/bench_snn.py --batch 8 --steps 50 100 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# ----------------------------------------------------------------------------- constants

DT = 0.001
TAU_RC = 0.02  # minisnn LIF defaults (Nengo's)
TAU_REF = 0.002
SYNAPSE = 0.005
INPUT_SHAPE = (3, 200, 300)
CONVS = [(3, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 2), (64, 128, 1), (128, 128, 2)]  # cin, cout, stride
DENSES = [(121600, 512), (512, 256), (256, 64)]  # spiking dense layers
READOUT = (64, 4)


def set_input(h: int, w: int) -> None:
    """Use a 3 x h x w input (default 200 x 300): fc1's fan-in follows the conv stack."""
    global INPUT_SHAPE
    INPUT_SHAPE = (3, int(h), int(w))
    for _, _, s in CONVS:
        h, w = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
    DENSES[0] = (CONVS[-1][1] * h * w, DENSES[0][1])


LAYER_NAMES = [f"conv{i}" for i in range(1, 7)] + ["fc1", "fc2", "fc3"]  # the 9 spiking layers

TARGET_SPEEDUP = 10.0  # minisnn images/s >= 10x snnTorch at T = 100
TARGET_FLAT_RSS = 0.10  # peak RSS at T = 200 within 10% of T = 50
TARGET_RSS_RATIO = 0.25  # minisnn peak RSS <= 1/4 of snnTorch's
RATE_BAND = (100.0, 250.0)  # "realistic" average rate per layer (Hz)
RATE_STEPS = 50  # snnTorch's rates are counted in a separate, untimed run of at most this many steps
PRECISION = {"value": None}  # minisnn simulate(precision=...) of every minisnn run (set by main)
BATCH_CANDIDATES = (32, 16, 8, 4, 2, 1)
TORCH_PROBE_SMALL = 4
FULL_BATCH = 32


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=None,
                   help="batch (default: the largest of 32, 16, 8, ... whose estimated run fits --budget-min)")
    p.add_argument("--full", action="store_true", help=f"batch {FULL_BATCH} whatever the estimate says")
    p.add_argument("--steps", nargs="+", default=["50", "100", "200"], help="T values (default 50 100 200)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba, BLAS and torch (default 2)")
    p.add_argument("--time-chunk", type=int, default=50,
                   help="minisnn simulate time_chunk (default 50, simulate's own)")
    p.add_argument("--batch-chunk", type=int, default=0,
                   help="minisnn simulate batch_chunk (default 0: simulate's own choice, batch_chunk=None)")
    p.add_argument("--budget-min", type=float, default=20.0,
                   help="wall-time budget for the whole run when choosing the batch (default 20)")
    p.add_argument("--calib-images", type=int, default=1, help="images for the rate calibration (default 1)")
    p.add_argument("--calib-steps", type=int, default=50, help="T of the calibration runs (default 50)")
    p.add_argument("--calib-iters", type=int, default=3, help="at most this many spiking calibration runs (default 3)")
    p.add_argument("--input", default="200x300",
                   help="input H x W (default 200x300, the spec; smaller only for smoke tests)")
    p.add_argument("--no-path-compare", action="store_true",
                   help="skip the extra run at the middle T with the other of dense/event")
    p.add_argument("--rate-aim", type=float, default=170.0, help="calibration aim per layer, Hz (default 170)")
    p.add_argument("--path", default="auto", choices=["auto", "dense", "event"],
                   help="minisnn simulate(path=...) for the main runs (default auto); one extra run at the "
                        "middle T forces the other of dense/event, for the comparison")
    p.add_argument("--precision", default=None, choices=["float32", "float64"],
                   help="minisnn simulate(precision=...): the LIF steps' arithmetic (default: the net's "
                        "dtype, float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="skip snnTorch")
    p.add_argument("--no-mem-probe", action="store_true",
                   help=f"skip the batch-{FULL_BATCH} peak-RSS probe (run when --batch < {FULL_BATCH})")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed calls per engine and configuration, each process after its warm-up; the best "
                        "is reported (default 1; the suite's protocol rows use 3: on a shared machine a "
                        "single call of either engine can be slowed by a neighbour)")
    p.add_argument("--rounds", type=int, default=1,
                   help="child processes per engine and T, the two engines' children in turn (minisnn, "
                        "snnTorch, then snnTorch, minisnn, ...); each engine's fastest child is reported "
                        "(default 1; the suite's protocol rows use 2, so that a slow stretch of a shared host "
                        "cannot land on one engine only)")
    p.add_argument("--no-profile", action="store_true", help="skip the minisnn time breakdown")
    p.add_argument("--profile-steps", type=int, default=50, help="T of the profiled minisnn run (default 50)")
    p.add_argument("--chunk-sweep", default="10x1,25x1",
                   help="extra minisnn runs at the middle T with other blocks, time_chunk x batch_chunk "
                        "(default '10x1,25x1'; '' for none; batch_chunk 0: simulate's choice)")
    p.add_argument("--weights", default=None,
                   help="folder with calibrated weights from an earlier run (--keep-weights); skips calibration")
    p.add_argument("--keep-weights", default=None, help="keep the calibrated weights in this folder")
    p.add_argument("--json", default="bench_snn.json",
                   help="JSON output; a bare file name goes to benchmarks/out/ (default bench_snn.json)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: child-process role
    a = p.parse_args(argv)
    steps = []
    for s in a.steps:
        steps += [int(v) for v in str(s).replace(",", " ").split()]
    if not steps or min(steps) < 1:
        p.error("--steps needs positive integers")
    a.steps = steps
    try:
        a.sweep = [tuple(int(v) for v in spec.lower().split("x")) for spec in a.chunk_sweep.replace(" ", "").split(",")
                   if spec]
        assert all(len(b) == 2 and min(b) >= 1 for b in a.sweep)
    except (ValueError, AssertionError):
        p.error(f"--chunk-sweep wants a list like '10x1,50x1', got {a.chunk_sweep!r}")
    if a.full:
        a.batch = FULL_BATCH
    try:
        a.input_hw = tuple(int(v) for v in a.input.lower().split("x"))
        assert len(a.input_hw) == 2 and min(a.input_hw) >= 8
    except (ValueError, AssertionError):
        p.error(f"--input wants HxW (both >= 8), got {a.input!r}")
    if a.batch is not None and a.batch < 1:
        p.error("--batch must be >= 1")
    if a.repeats < 1:
        p.error(f"--repeats must be >= 1, got {a.repeats}")
    if a.rounds < 1:
        p.error(f"--rounds must be >= 1, got {a.rounds}")
    return a


# ----------------------------------------------------------------------------- small helpers (no numpy)


def memory_report() -> dict:
    """Peak RSS of this process: ``ru_maxrss`` (what the tables show) and ``VmHWM`` (check).

    ``ru_maxrss`` of a process started by fork/vfork + exec starts at the *parent's* peak (the
    kernel carries it over at exec), ``VmHWM`` does not.  The parent of the worker processes
    therefore stays small (it imports no numpy/torch until all workers are done), and both
    numbers are kept so the JSON shows they agree.
    """
    return {"ru_maxrss_mb": C.peak_rss_mb(), "vmhwm_mb": C.proc_status_mb("VmHWM"), "vmrss_mb": C.proc_status_mb("VmRSS")}


def layer_geometry():
    """Per spiking layer: name, kind, output shape (no batch), and the input shape."""
    out = []
    c, h, w = INPUT_SHAPE
    for i, (ci, co, s) in enumerate(CONVS):
        ho, wo = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
        out.append({"name": LAYER_NAMES[i], "kind": "conv", "cin": ci, "cout": co, "stride": s,
                    "in_shape": [c, h, w], "out_shape": [co, ho, wo]})
        c, h, w = co, ho, wo
    assert c * h * w == DENSES[0][0], (c, h, w)
    for j, (fi, fo) in enumerate(DENSES):
        out.append({"name": LAYER_NAMES[6 + j], "kind": "dense", "cin": fi, "cout": fo,
                    "in_shape": [fi], "out_shape": [fo]})
    return out


# ----------------------------------------------------------------------------- worker: minisnn side


def load_layer_arrays(wdir: Path):
    """``[(w, b), ...]`` for the 9 spiking layers and the readout, float32, from ``wdir``."""
    import numpy as np

    out = []
    for name in LAYER_NAMES + ["readout"]:
        out.append((np.load(wdir / f"{name}.w.npy"), np.load(wdir / f"{name}.b.npy")))
    return out


def build_minisnn_net(arrays, upto: int | None = None):
    """The minisnn ``Sequential`` with the given weights (no extra copies of the 250 MB fc1).

    ``upto = k`` builds only the layers up to and including the k-th spiking layer's neurons
    (calibration); None builds the whole net with the readout.
    """
    from minisnn.layers import Conv2d, Dense, Flatten, Neurons, Sequential
    from minisnn.neurons import LIF

    geo = layer_geometry()
    n = len(LAYER_NAMES) if upto is None else upto + 1
    layers = []
    for k in range(n):
        g, (w, b) = geo[k], arrays[k]
        if g["kind"] == "conv":
            m = Conv2d(g["cin"], g["cout"], 3, stride=g["stride"], padding=1)
        else:
            if k == 6:
                layers.append(Flatten())
            m = Dense(1, 1)  # a tiny layer, then the real arrays: Dense's own init would draw 121600x512 float64
            m.in_features, m.out_features = g["cin"], g["cout"]
        m.w.data, m.b.data = w, b  # share, no copy
        layers += [m, Neurons(LIF(tau_rc=TAU_RC, tau_ref=TAU_REF))]
    if upto is None:
        w, b = arrays[-1]
        m = Dense(1, 1)
        m.in_features, m.out_features = READOUT
        m.w.data, m.b.data = w, b
        layers.append(m)
    net = Sequential(*layers)
    names = [str(i) for i, layer in enumerate(net) if type(layer).__name__ == "Neurons"]
    return net, dict(zip(names, LAYER_NAMES))  # simulate's layer keys -> our names


def event_driven_option():
    """Name of an event-driven / dispatch option of ``simulate`` if it has one, else None."""
    import inspect

    from minisnn.simulate import simulate

    for name in inspect.signature(simulate).parameters:
        if any(k in name.lower() for k in ("event", "sparse", "dispatch", "path", "mode")):
            return name
    return None


def worker_calibrate(job):
    """Draw the He-normal weights and the images, calibrate the firing rates, save.

    Layer by layer on the rate twin (LIFRate, what the spiking layer fires on average for a
    constant current): the layer's time-mean current is ``J = scale * (W h) + bias`` with
    ``h`` the previous layer's rates (the mean of its filtered spike output); ``scale`` gives J a
    standard deviation of ``sd_j`` over neurons and ``bias`` a mean chosen (by bisection) so
    that the predicted average rate is ``rate_aim``.  Then the spiking net is run
    (``calib_steps`` steps, minisnn) and every layer whose measured rate is outside
    ``accept`` gets its mean current moved by the miss; at most ``max_iter`` spiking runs.
    """
    import numpy as np

    from minisnn.kernels import warmup
    from minisnn.neurons import LIFRate
    from minisnn.ops import conv2d_forward
    from minisnn.simulate import simulate

    from minisnn.runtime import reuse_freed_memory, set_threads

    threads = set_threads(job["threads"])  # not C.set_threads: torch would count in the peak RSS
    reuse_freed_memory()  # as minisnn-train does
    warmup()
    wdir = Path(job["wdir"])
    rng = np.random.default_rng(job["seed"])
    f32 = np.float32
    images = rng.random((job["n_images"], *INPUT_SHAPE), dtype=f32)
    np.save(wdir / "images.npy", images)
    xcal = np.ascontiguousarray(images[: job["calib_images"]])

    geo = layer_geometry()
    raw = []  # He-normal, before the per-layer scaling
    for g in geo:
        if g["kind"] == "conv":
            shape, fan_in = (g["cout"], g["cin"], 3, 3), g["cin"] * 9
        else:
            shape, fan_in = (g["cout"], g["cin"]), g["cin"]
        raw.append(rng.standard_normal(shape, dtype=f32) * f32(math.sqrt(2.0 / fan_in)))
    w_ro = rng.standard_normal((READOUT[1], READOUT[0]), dtype=f32) * f32(math.sqrt(2.0 / READOUT[0]))
    readout = (w_ro, np.zeros(READOUT[1], f32))

    lif_rate = LIFRate(tau_rc=TAU_RC, tau_ref=TAU_REF)
    aim, T, sd_j = job["rate_aim"], job["calib_steps"], job["sd_j"]
    lo_ok, hi_ok = job["accept"]

    # 1. rate-model pass, layer by layer
    layers, h = [], xcal
    for k, g in enumerate(geo):
        w = raw[k]
        if g["kind"] == "conv":
            z, _ = conv2d_forward(h, w, None, g["stride"], 1)
        else:
            z = h.reshape(h.shape[0], -1) @ w.T
        z64 = z.astype(np.float64)
        zc = ((z64 - z64.mean()) / max(z64.std(), 1e-30)).ravel()
        sample = zc if zc.size <= 200_000 else zc[np.random.default_rng(k).choice(zc.size, 200_000, replace=False)]
        scale = sd_j / max(float(z64.std()), 1e-30)

        def predicted(m, sample=sample):  # average LIFRate for J = m + sd_j * (standardised z)
            return float(lif_rate.rate(m + sd_j * sample).mean())

        def solve(target, predicted=predicted):  # mean current with predicted(m) == target
            lo, hi = -20.0, 200.0
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if predicted(mid) < target else (lo, mid)
            return 0.5 * (lo + hi)

        m = solve(aim)
        layers.append({"layer": g["name"], "scale": scale, "zmean": float(z64.mean()), "mean_J": m,
                       "predicted": predicted, "solve": solve, "predicted_hz": predicted(m)})
        J = (z64 * scale + (m - scale * float(z64.mean()))).astype(f32)
        h = lif_rate.rate(J).astype(f32)  # the mean of the spiking layer's (filtered) output
        del z, z64, J

    def arrays_now():
        out = []
        for k, e in enumerate(layers):
            bias = e["mean_J"] - e["scale"] * e["zmean"]
            out.append(((raw[k] * f32(e["scale"])).astype(f32), np.full(geo[k]["cout"], bias, f32)))
        return out + [readout]

    # 2. spiking runs: measure, correct the layers that miss the band
    log = []
    for it in range(job["max_iter"]):
        arrays = arrays_now()
        net, names = build_minisnn_net(arrays)
        t0 = time.perf_counter()
        res = simulate(net, xcal, T, dt=DT, synapse=SYNAPSE, time_chunk=job["time_chunk"],
                       batch_chunk=job["batch_chunk"] or None)
        t_run = time.perf_counter() - t0
        rates = {names[kk]: float(v) for kk, v in res.rates.items()}
        log.append({"iter": it, "run_s": t_run, "rates_hz": rates,
                    "mean_J": {e["layer"]: e["mean_J"] for e in layers},
                    "predicted_hz": {e["layer"]: e["predicted_hz"] for e in layers}})
        print(f"  .. calibration run {it + 1}: " + ", ".join(f"{n} {v:.0f}" for n, v in rates.items())
              + f" Hz ({t_run:.1f} s)", file=sys.stderr, flush=True)
        bad = [e for e in layers if not lo_ok <= rates[e["layer"]] <= hi_ok]
        if not bad or it == job["max_iter"] - 1:
            break
        for e in bad:  # the rate model misses the transient and the spike noise: shift by the miss
            e["mean_J"] = e["solve"](min(max(e["predicted_hz"] + (aim - rates[e["layer"]]), 5.0), 450.0))
            e["predicted_hz"] = e["predicted"](e["mean_J"])
        del res, net
    for (wk, bk), name in zip(arrays, LAYER_NAMES + ["readout"]):
        np.save(wdir / f"{name}.w.npy", wk)
        np.save(wdir / f"{name}.b.npy", bk)
    per_layer = [{"layer": e["layer"], "scale": e["scale"], "bias": float(arrays[k][1][0]), "mean_J": e["mean_J"],
                  "predicted_hz": e["predicted_hz"], "rate_hz": rates[e["layer"]]} for k, e in enumerate(layers)]
    return {
        "threads": threads,
        "layers": per_layer,
        "log": log,
        "spiking_runs": len(log),
        "rates_full_net": rates,
        "mean_rate_full_net": res.mean_rate,
        # the last run covered the whole net: its time per image-step is the minisnn probe
        "probe_s_per_image_step": t_run / (xcal.shape[0] * T),
        "probe_run_s": t_run,
        "event_driven_option": event_driven_option(),
        "macs_per_image": res.macs,
        "synops_per_image": res.synops,
        "memory": memory_report(),
    }


def worker_minisnn(job):
    """One minisnn configuration: compile on one image for one step, warm up on the whole batch
    for one time block (unless ``job["warm"]`` is False), then time ``simulate``."""
    import numpy as np

    from minisnn.kernels import warmup
    from minisnn.simulate import simulate

    from minisnn.runtime import reuse_freed_memory, set_threads

    threads = set_threads(job["threads"])  # not C.set_threads: torch would count in the peak RSS
    reuse_freed_memory()  # as minisnn-train does
    warmup()
    wdir = Path(job["wdir"])
    net, names = build_minisnn_net(load_layer_arrays(wdir))
    x = np.ascontiguousarray(np.load(wdir / "images.npy", mmap_mode="r")[: job["batch"]])
    kw = dict(dt=DT, synapse=SYNAPSE, time_chunk=job["time_chunk"], batch_chunk=job["batch_chunk"] or None,
              path=job.get("path", "auto"), precision=job.get("precision"))
    simulate(net, x[:1], 1, **kw)  # compile/load kernels, touch the weights
    first_call_s = None
    if job.get("warm", True):
        # One time block on the whole batch, untimed, as snnTorch's warm-up step on the whole
        # batch: it allocates (and first touches) every buffer that the timed run then reuses.
        # Cold, the first touch is page faults: the JSON's "warm_up_s" keeps that call's time.
        t0 = time.perf_counter()
        simulate(net, x, min(job["time_chunk"], job["steps"]), **kw)
        first_call_s = time.perf_counter() - t0
    setup = memory_report()
    if job.get("profile"):
        timers = install_timers(min(job["batch_chunk"] or job["batch"], job["batch"]))
    # the best of job["repeats"] calls (each the same simulation: the same results)
    res, wall, cpu, walls = C.best_of(lambda: simulate(net, x, job["steps"], **kw), job.get("repeats", 1))
    out = {
        "engine": "minisnn", "batch": job["batch"], "steps": job["steps"],
        "time_chunk": job["time_chunk"], "batch_chunk": job["batch_chunk"],
        "wall_s": wall, "wall_s_all": walls, "cpu_s": cpu, "images_per_s": job["batch"] / wall,
        "image_steps_per_s": job["batch"] * job["steps"] / wall, "warm_up_s": first_call_s,
        "rates_hz": {names[k]: float(v) for k, v in res.rates.items()},
        "mean_rate_hz": res.mean_rate,
        "synops_per_image": res.synops["total"], "macs_per_image_step": res.macs,
        "readout_mean_abs": float(np.abs(res.readout).mean()),
        "path": kw["path"], "paths": {names.get(str(int(k) + 1), k): v for k, v in res.paths.items()},  # conv k feeds layer k+1
        "threads": threads, "setup_memory": setup, "memory": memory_report(),
        "loadavg": os.getloadavg(),
    }
    try:
        import numba

        out["numba_threading_layer"] = numba.threading_layer()
    except Exception:
        out["numba_threading_layer"] = None
    if job.get("profile"):
        out["profile"] = timers.report(wall)
    return out


class _Timers:
    """Accumulated wall time per category, from wrappers installed by :func:`install_timers`."""

    def __init__(self):
        self.t = {}
        self.n = {}
        self.per_layer = {}

    def add(self, key, dt, layer=None):
        self.t[key] = self.t.get(key, 0.0) + dt
        self.n[key] = self.n.get(key, 0) + 1
        if layer is not None:
            d = self.per_layer.setdefault(layer, {})
            d[key] = d.get(key, 0.0) + dt

    def report(self, total):
        t = dict(self.t)
        conv = t.pop("conv_forward_total", 0.0)
        lif = t.pop("lif_run_total", 0.0)
        inner_conv = t.get("im2col", 0.0) + t.get("conv_gemm_per_image", 0.0) + t.get("conv_unrows", 0.0)
        cats = {
            "conv GEMM, per-image matmul (conv1-3)": t.get("conv_gemm_per_image", 0.0),
            "conv GEMM folded + bias add + checks (conv4-6 GEMM, all convs' bias)": conv - inner_conv,
            "im2col (numba)": t.get("im2col", 0.0),
            "conv output transposes (_unrows, folded convs)": t.get("conv_unrows", 0.0),
            "event-driven conv (numba; conv2-6 when spikes are sparse)": t.get("conv_events", 0.0),
            "dense GEMM + bias (fc1-3)": t.get("dense_forward", 0.0),
            "LIF + synapse time-scan kernel (numba)": t.get("lif_kernel", 0.0),
            "LIF.run argument checks (NaN scan of J)": lif - t.get("lif_kernel", 0.0),
            "shape inference + ANN MACs (per simulate call)": t.get("unit_shapes", 0.0),
        }
        cats["simulate bookkeeping (spike counts, synops, readout sums, allocation)"] = total - sum(cats.values())
        per_layer = {}
        for layer, d in self.per_layer.items():
            per_layer[layer] = d
        return {"total_s": total, "categories_s": cats, "raw_s": self.t, "calls": self.n, "per_layer_s": per_layer}


def install_timers(nb: int):
    """Wrap the pieces of a minisnn spiking run with wall-clock timers (this process only).

    Nothing in minisnn is edited: module attributes that the code looks up at call time are
    replaced by timed wrappers.  Time spent under ``_layer_shapes`` (the one-image
    ANN pass that simulate makes for shapes and MAC counts) is kept out of the op timers.
    """
    import minisnn.functional as F
    import minisnn.kernels.lif as klif
    import minisnn.neurons as neurons
    import minisnn.ops.conv as conv
    import minisnn.simulate as sim

    T = _Timers()
    state = {"overhead": False}
    geo = layer_geometry()
    conv_names = {(g["cin"], g["in_shape"][1], g["in_shape"][2]): g["name"] for g in geo if g["kind"] == "conv"}
    dense_names = {(g["cin"], g["cout"]): g["name"] for g in geo if g["kind"] == "dense"}
    dense_names[READOUT] = "readout"
    size_names = {}
    for g in geo:
        size_names.setdefault(math.prod(g["out_shape"]), []).append(g["name"])
    current = {"layer": None}

    def timed(key, fn, layer_of=None):
        def wrapper(*a, **k):
            if state["overhead"]:
                return fn(*a, **k)
            layer = layer_of(*a, **k) if layer_of else current["layer"]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                T.add(key, time.perf_counter() - t0, layer)
        return wrapper

    def overhead(key, fn):
        def wrapper(*a, **k):
            state["overhead"] = True
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                state["overhead"] = False
                T.add(key, time.perf_counter() - t0)
        return wrapper

    def conv_layer(self, x, w, b=None, **kw):
        name = conv_names.get((x.shape[1], x.shape[2], x.shape[3]), "conv?")
        current["layer"] = name
        return name

    def dense_layer(self, x, w, b=None, **kw):
        name = dense_names.get((w.shape[1], w.shape[0]), "dense?")
        current["layer"] = name
        return name

    def lif_layer(J, voltage, *a, **k):
        # M = batch_chunk * units; conv2 and conv5 have the same number of units, so an
        # ambiguous size goes to the linear layer that ran just before (its own)
        cands = size_names.get(voltage.shape[0] // nb, [])
        if current["layer"] in cands:
            return current["layer"]
        if len(cands) == 1:
            current["layer"] = cands[0]
            return cands[0]
        return "lif?"

    F.Conv2dFn.forward = timed("conv_forward_total", F.Conv2dFn.forward, conv_layer)
    F.DenseFn.forward = timed("dense_forward", F.DenseFn.forward, dense_layer)
    # the simulator calls the ops directly for the layers between spiking layers
    sim.conv2d_forward = timed("conv_forward_total", sim.conv2d_forward,
                               lambda x, w, *a, **k: conv_layer(None, x, w))
    sim.dense_forward = timed("dense_forward", sim.dense_forward, lambda x, w, *a, **k: dense_layer(None, x, w))
    sim.conv2d_events = timed("conv_events", sim.conv2d_events, lambda x, w, *a, **k: conv_layer(None, x, w))
    conv.im2col = timed("im2col", conv.im2col)
    conv._per_image = timed("conv_gemm_per_image", conv._per_image)
    conv._unrows = timed("conv_unrows", conv._unrows)
    neurons.LIF.run = timed("lif_run_total", neurons.LIF.run,
                            lambda self, dt, J, out, state, **k: lif_layer(J, state["voltage"]))
    klif.lif_run_numba = timed("lif_kernel", klif.lif_run_numba)
    klif.lif_run32_numba = timed("lif_kernel", klif.lif_run32_numba)
    sim._layer_shapes = overhead("unit_shapes", sim._layer_shapes)
    return T


# ----------------------------------------------------------------------------- worker: snnTorch side


def torch_weights(arrays, beta):
    """minisnn's weights in snnTorch's units.

    minisnn (Nengo) LIF: ``v += (J - v)(1 - beta)`` with J in threshold units and spikes of
    height ``1/dt`` (amplitude 1); snnTorch ``Leaky``: ``mem = beta mem + I`` and spikes of
    height 1.  So ``I = (1 - beta) J``: every spiking layer's weights and bias are multiplied by
    ``1 - beta``, and every layer that reads spikes (all but conv1) by ``1/dt`` as well; the
    readout (no neurons) only by ``1/dt``.  Up to snnTorch having no refractory period and no
    synapse, the currents are then the same.
    """
    out = []
    for k, (w, b) in enumerate(arrays):
        spiking = k < len(LAYER_NAMES)
        s_in = 1.0 if k == 0 else 1.0 / DT
        s_out = (1.0 - beta) if spiking else 1.0
        out.append(((w * (s_in * s_out)).astype(w.dtype), (b * s_out).astype(b.dtype)))
    return out


def worker_torch(job):
    """One snnTorch configuration (or a short probe): the usual time-major loop, no_grad."""
    import numpy as np
    import torch

    torch.set_num_threads(job["threads"])
    try:
        import snntorch as snn
    except Exception as e:
        return {"engine": "snntorch", "error": f"snntorch not installed ({e})"}
    nn = torch.nn
    wdir = Path(job["wdir"])
    beta = math.exp(-DT / TAU_RC)
    arrays = torch_weights(load_layer_arrays(wdir), beta)
    geo = layer_geometry()
    with torch.device("meta"):  # no init: the real weights are attached below without copies
        mods = [nn.Conv2d(g["cin"], g["cout"], 3, stride=g["stride"], padding=1) if g["kind"] == "conv"
                else nn.Linear(g["cin"], g["cout"]) for g in geo]
        mods.append(nn.Linear(*READOUT))
    for m, (w, b) in zip(mods, arrays):
        m.weight = nn.Parameter(torch.from_numpy(w), requires_grad=False)
        m.bias = nn.Parameter(torch.from_numpy(b), requires_grad=False)
    convs, fcs, fc_out = mods[:6], mods[6:9], mods[9]
    # the leanest twin a user would write: hidden state inside the modules, reset to zero
    # (as minisnn's LIF), nothing recorded in the timed loop
    lifs = [snn.Leaky(beta=beta, init_hidden=True, reset_mechanism="zero") for _ in LAYER_NAMES]
    B, T = job["batch"], job["steps"]
    x = torch.from_numpy(np.array(np.load(wdir / "images.npy", mmap_mode="r")[:B]))  # a writable copy
    window = (T + 1) // 2  # minisnn's default readout window: the second half

    def run(T, window, step_times=None, counts=None):
        """The time-major loop; ``counts`` (a float64 tensor per layer) makes it also count
        spikes, which the timed run does not."""
        for lif in lifs:
            lif.reset_mem()
        acc = torch.zeros(B, READOUT[1])
        with torch.no_grad():
            for t in range(T):
                t0 = time.perf_counter()
                h = x
                for i, conv in enumerate(convs):
                    h = lifs[i](conv(h))
                    if counts is not None:
                        counts[i] += h.sum(dtype=torch.float64)
                h = h.flatten(1)
                for j, fc in enumerate(fcs):
                    h = lifs[6 + j](fc(h))
                    if counts is not None:
                        counts[6 + j] += h.sum(dtype=torch.float64)
                out = fc_out(h)
                if t >= T - window:
                    acc += out
                if step_times is not None:
                    step_times.append(time.perf_counter() - t0)
        return acc / window

    if job.get("warmup", True):
        run(1, 1)
    setup = memory_report()
    def timed_run():
        times = []
        return run(T, window, times), times

    (readout, step_times), wall, cpu, walls = C.best_of(timed_run, job.get("repeats", 1))  # as minisnn's
    Tc = min(T, RATE_STEPS)  # the rates, from a separate (untimed) run of at most RATE_STEPS steps
    counts = torch.zeros(len(lifs), dtype=torch.float64)
    run(Tc, 1, counts=counts)
    sizes = [math.prod(g["out_shape"]) for g in geo]
    rates = {name: float(counts[i]) / (B * sizes[i] * Tc * DT) for i, name in enumerate(LAYER_NAMES)}
    return {
        "engine": "snntorch", "batch": B, "steps": T, "wall_s": wall, "wall_s_all": walls, "cpu_s": cpu,
        "images_per_s": B / wall, "image_steps_per_s": B * T / wall,
        "step_s": step_times, "last_step_s": step_times[-1],
        "rates_hz": rates, "mean_rate_hz": float(counts.sum()) / (B * sum(sizes) * Tc * DT), "rate_steps": Tc,
        "readout_mean_abs": float(readout.abs().mean()),
        "torch": torch.__version__, "snntorch": getattr(snn, "__version__", None),
        "torch_threads": torch.get_num_threads(),
        "setup_memory": setup, "memory": memory_report(), "loadavg": os.getloadavg(),
    }


WORKERS = {"calibrate": worker_calibrate, "minisnn": worker_minisnn, "torch": worker_torch}


def run_worker(role: str, job: dict) -> dict:
    """A child process's case (:func:`_common.worker_main`)."""
    if job.get("input_hw"):
        set_input(*job["input_hw"])
    return WORKERS[role](job)


# ----------------------------------------------------------------------------- parent: orchestration


def spawn(role: str, job: dict, wdir: Path) -> dict:
    """Run a worker in a child process (:func:`_common.spawn`; same interpreter, same thread
    environment); its progress lines go to the console."""
    job = {**job, "wdir": str(wdir), "input_hw": list(INPUT_SHAPE[1:]), "precision": PRECISION["value"]}
    return C.spawn(__file__, role, job, C.peer_env() if role == "torch" else C.minisnn_env(), stderr_to_console=True)


def fastest_child(children: list) -> dict:
    """One engine's result from its ``--rounds`` children: the fastest (by its best call), with
    every child's best call in ``round_wall_s`` (None for a child that failed, so the rounds of
    the two engines stay paired) and every call in ``wall_s_all``, round by round, and the
    largest peak RSS of them in ``memory`` (the children run the same configuration).  A child
    that failed is reported as such only if every child failed."""
    ok = [r for r in children if "error" not in r]
    if not ok:
        return children[0]
    best = dict(min(ok, key=lambda r: r["wall_s"]))
    best["round_wall_s"] = [r.get("wall_s") for r in children]
    best["wall_s_all"] = [w for r in ok for w in r.get("wall_s_all", [r["wall_s"]])]
    best["memory"] = max((r["memory"] for r in ok), key=lambda m: m.get("ru_maxrss_mb") or 0.0)
    return best


def per_step_after_first(r):
    """snnTorch probe: median time of the steps after the first (which allocates everything)."""
    st = sorted(r["step_s"][1:] or r["step_s"])
    return st[len(st) // 2]


def middle_T(steps):
    return sorted(steps)[len(steps) // 2]


def estimate_run_s(batch, steps, m_step, t_step, tc, with_torch, mem_probe, profile_steps, n_sweep=0):
    """Seconds for the measurements at ``batch`` from per-image-step probe times."""
    per_child = 6.0  # interpreter start, imports, kernel cache, weight loading
    s = n_sweep * (per_child + batch * (middle_T(steps) + min(tc, middle_T(steps))) * m_step)
    for T in steps:  # (minisnn: one warm-up block of min(tc, T) steps, then the timed run)
        s += per_child + batch * (T + min(tc, T)) * m_step + 1.0
        if with_torch:
            s += per_child + batch * (T + 1) * t_step(batch)  # + the warm-up step
    if mem_probe and batch < FULL_BATCH:
        s += per_child + FULL_BATCH * tc * m_step
    if profile_steps:
        s += per_child + profile_steps * m_step * 1.1
    return s


def ok(flag):
    return "-" if flag is None else ("ok" if flag else "MISS")


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)  # may re-exec; nothing heavy imported yet
    set_input(*args.input_hw)
    PRECISION["value"] = args.precision
    if args.worker:
        return C.worker_main(args.worker, run_worker)
    t_start = time.perf_counter()
    # This process only orchestrates: it must stay small while the workers run, because a
    # child's ru_maxrss starts at the parent's peak (see memory_report).  No numpy/torch here
    # until the end.
    torch_available = False
    if not args.no_torch:
        import importlib.util

        torch_available = importlib.util.find_spec("torch") is not None
        snn_available = importlib.util.find_spec("snntorch") is not None
        torch_available = torch_available and snn_available
    print(f"minisnn spiking-inference benchmark  ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    print(f"cpu: {C._cpu_model()}, {len(os.sched_getaffinity(0))} usable cores; load average {C.fmt_loadavg()}")
    print(f"net: LocNet-shaped, input {'x'.join(map(str, INPUT_SHAPE))}, convs 32-32-64-64-128-128 (3x3 p1, "
          f"s 1/2), dense {DENSES[0][0]}-512-256-64 LIF, 64->4 readout; LIF tau_rc {TAU_RC}, tau_ref {TAU_REF}, dt {DT}; "
          f"threads {args.threads} (numba, BLAS, torch); each configuration in its own process")
    if args.no_torch:
        print("snnTorch: skipped (--no-torch)")
    elif not torch_available:
        print("snnTorch: not installed (torch or snntorch missing); minisnn only")

    if args.weights:
        wdir = Path(args.weights)
        own_wdir = False
    elif args.keep_weights:
        wdir = Path(args.keep_weights)
        wdir.mkdir(parents=True, exist_ok=True)
        own_wdir = False
    else:
        wdir = Path(tempfile.mkdtemp(prefix="bench_snn_"))
        own_wdir = True
    payload = {"benchmark": "bench_snn", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:],
               "options": {k: v for k, v in vars(args).items() if k != "worker"},
               "constants": {"dt": DT, "tau_rc": TAU_RC, "tau_ref": TAU_REF, "synapse": SYNAPSE,
                             "layers": layer_geometry(), "readout": READOUT},
               "targets": {"speedup_at_T100": TARGET_SPEEDUP, "rss_T200_vs_T50": TARGET_FLAT_RSS,
                           "rss_ratio": TARGET_RSS_RATIO, "rate_band_hz": RATE_BAND}}
    try:
        _main(args, wdir, torch_available, payload, t_start)
    finally:
        if own_wdir:
            shutil.rmtree(wdir, ignore_errors=True)


def _main(args, wdir, torch_available, payload, t_start):
    tc, bc = args.time_chunk, args.batch_chunk
    n_images = max(FULL_BATCH, args.batch or 0)
    manifest = wdir / "calibration.json"

    # ---- 1. calibration (a child process) ---------------------------------------------------
    if args.weights and manifest.exists():
        with open(manifest) as f:
            calib = json.load(f)
        print(f"\nweights: reused from {wdir} (calibrated {calib.get('time')})")
        if calib.get("n_images", 0) < n_images:
            raise SystemExit(f"{wdir} has {calib.get('n_images')} images, need {n_images}")
    else:
        print(f"\ncalibrating the firing rates (minisnn, {args.calib_images} image(s), T = {args.calib_steps}, "
              f"aim {args.rate_aim:.0f} Hz per layer) ...", flush=True)
        job = {"threads": args.threads, "seed": args.seed, "n_images": n_images,
               "calib_images": args.calib_images, "calib_steps": args.calib_steps, "rate_aim": args.rate_aim,
               "accept": [args.rate_aim * 0.85, args.rate_aim * 1.15], "sd_j": 2.0, "max_iter": max(1, args.calib_iters),
               "time_chunk": tc, "batch_chunk": bc}
        t0 = time.perf_counter()
        calib = spawn("calibrate", job, wdir)
        if "error" in calib:
            raise SystemExit(calib["error"])
        calib.update(time=time.strftime("%Y-%m-%dT%H:%M:%S"), n_images=n_images, seconds=time.perf_counter() - t0,
                     calib_steps=args.calib_steps, calib_images=args.calib_images)
        with open(manifest, "w") as f:
            json.dump(calib, f, default=str)
    payload["calibration"] = calib
    geo = layer_geometry()
    rows = [[g["name"], "x".join(map(str, g["out_shape"])), e["scale"], e["bias"], e["mean_J"],
             e["predicted_hz"], e["rate_hz"]] for g, e in zip(geo, calib["layers"])]
    print(f"calibration: each spiking layer's He-normal weights x scale, + bias, so that its time-mean current J "
          f"has sd 2 over neurons and the mean 'mean J' (from the LIFRate twin, then checked with spiking runs; "
          f"{calib['spiking_runs']} run(s), {calib.get('seconds', 0):.0f} s in all)")
    C.print_table(["layer", "units (CxHxW)", "w scale", "bias", "mean J", "LIFRate Hz",
                   f"measured Hz (T={calib.get('calib_steps', '?')})"], rows, "llrrrrr")
    m_step = calib["probe_s_per_image_step"]
    ev = calib.get("event_driven_option")

    # ---- 2. probe snnTorch at a small batch and at batch 32, choose the batch ---------------------
    # snnTorch's time per image-step grows with the batch (the per-step tensors leave the caches),
    # so it is probed at both ends; the batch-32 probe is also its peak-RSS probe.
    t_step = lambda b: 0.0  # noqa: E731
    torch32 = None
    # (not needed with a fixed --batch and --no-mem-probe: then only the estimate misses them)
    if torch_available and (args.batch is None or not args.no_mem_probe):
        print(f"  .. snnTorch probes (batch {TORCH_PROBE_SMALL}, batch {FULL_BATCH})", file=sys.stderr, flush=True)
        small = spawn("torch", {"threads": args.threads, "batch": TORCH_PROBE_SMALL, "steps": 2, "warmup": True}, wdir)
        torch32 = spawn("torch", {"threads": args.threads, "batch": FULL_BATCH, "steps": 3, "warmup": False}, wdir)
        if "error" in small or "error" in torch32:
            print(f"snnTorch probe failed: {small.get('error') or torch32.get('error')}; snnTorch skipped")
            torch_available, torch32 = False, None
        else:
            torch32.update(engine="snntorch", probe=True)
            payload["torch_probe_small"] = small
            ts, tl = min(small["step_s"]) / TORCH_PROBE_SMALL, per_step_after_first(torch32) / FULL_BATCH

            def t_step(b):  # per image-step, interpolated in log2(batch) between the probes
                f = min(max(math.log2(b / TORCH_PROBE_SMALL) / math.log2(FULL_BATCH / TORCH_PROBE_SMALL), 0.0), 1.0)
                return ts * (tl / ts) ** f
    elapsed = time.perf_counter() - t_start
    budget = args.budget_min * 60.0
    est = {b: estimate_run_s(b, args.steps, m_step, t_step, tc, torch_available, not args.no_mem_probe,
                             0 if args.no_profile else args.profile_steps, len(args.sweep)) for b in BATCH_CANDIDATES}
    if args.batch is not None:
        B = args.batch
        why = "--full" if args.full else "--batch"
    else:
        fits = [b for b in BATCH_CANDIDATES if elapsed + est[b] <= budget]
        B = fits[0] if fits else 1
        why = f"auto: the largest batch whose estimate fits --budget-min {args.budget_min:g}"
    est_B = est.get(B) or estimate_run_s(B, args.steps, m_step, t_step, tc, torch_available, not args.no_mem_probe,
                                         0 if args.no_profile else args.profile_steps, len(args.sweep))
    print(f"\nprobes: minisnn {m_step * 1e3:.0f} ms per image-step (the calibration's 1-image run), "
          + (f"snnTorch {t_step(TORCH_PROBE_SMALL) * 1e3:.0f} ms per image-step at batch {TORCH_PROBE_SMALL}, "
             f"{t_step(FULL_BATCH) * 1e3:.0f} ms at batch {FULL_BATCH}" if torch_available else "snnTorch -"))
    print(f"batch {B} ({why}); estimated {est_B / 60:.1f} min more, {(elapsed + est_B) / 60:.1f} min in all"
          + (f"; batch {FULL_BATCH} (--full) would take ~{(elapsed + est[FULL_BATCH]) / 60:.0f} min"
             if B < FULL_BATCH else ""))
    if B < FULL_BATCH:
        print(f"NOTE: batch {B} instead of the spec's {FULL_BATCH} to stay within the time budget"
              + ("" if args.no_mem_probe else f"; peak RSS at batch {FULL_BATCH} is probed separately below"))
    print(f"minisnn: simulate(..., synapse={SYNAPSE}, time_chunk={tc}, batch_chunk={bc or None}) - path={args.path}; "
          f"memory ~ time_chunk x batch_chunk (the block) + the whole batch's neuron state")
    print(f"minisnn event-driven path: simulate(path=...) - main runs path={args.path!r}; one run at the "
          f"middle T with the other path for comparison")
    payload["event_driven"] = {"option": ev, "measured": True, "main_path": args.path}
    payload.update(batch=B, batch_reason=why, estimate_s=est_B, budget_s=budget)

    # ---- 3. the configurations ----------------------------------------------------------------------
    results = []
    jobs = {"minisnn": {"threads": args.threads, "batch": B, "time_chunk": tc, "batch_chunk": bc, "path": args.path,
                        "repeats": args.repeats},
            "snntorch": {"threads": args.threads, "batch": B, "repeats": args.repeats}}
    engines = ["minisnn", "snntorch"] if torch_available else ["minisnn"]
    for T in args.steps:
        children = {engine: [] for engine in engines}
        for k in range(args.rounds):
            for engine in (engines if k % 2 == 0 else engines[::-1]):  # in turn: m t, t m, m t, ...
                print(f"  .. {'snnTorch' if engine == 'snntorch' else engine} batch {B} T {T}"
                      + (f" (round {k + 1} of {args.rounds})" if args.rounds > 1 else ""), file=sys.stderr, flush=True)
                r = spawn("torch" if engine == "snntorch" else engine, {**jobs[engine], "steps": T}, wdir)
                r.setdefault("engine", engine); r.setdefault("steps", T); r.setdefault("batch", B)
                children[engine].append(r)
        results += [fastest_child(children[engine]) for engine in engines]
    payload["results"] = results

    # ---- 4. peak RSS at batch 32 (short runs), chunk sweep, profile -------------------------------
    probes = []
    if B < FULL_BATCH and not args.no_mem_probe:
        print(f"  .. memory probe batch {FULL_BATCH}", file=sys.stderr, flush=True)
        r = spawn("minisnn", {"threads": args.threads, "batch": FULL_BATCH, "steps": tc, "time_chunk": tc,
                              "batch_chunk": bc, "warm": False}, wdir)  # cold, as snnTorch's probe
        r.setdefault("engine", "minisnn"); r.setdefault("steps", tc); r.setdefault("batch", FULL_BATCH)
        probes.append(r)
        if torch32 is not None:
            probes.append(torch32)  # run right after the calibration
    payload["memory_probe"] = probes

    sweep = []
    if args.sweep:
        T_mid = middle_T(args.steps)
        for stc, sbc in args.sweep:
            print(f"  .. chunk sweep {stc}x{sbc} T {T_mid}", file=sys.stderr, flush=True)
            r = spawn("minisnn", {"threads": args.threads, "batch": B, "steps": T_mid, "time_chunk": stc,
                                  "batch_chunk": sbc}, wdir)
            r.update(time_chunk=stc, batch_chunk=sbc, steps=T_mid, batch=B, engine="minisnn")
            sweep.append(r)
    if not args.no_path_compare:
        T_mid = middle_T(args.steps)
        other = "dense" if args.path == "event" else "event"
        print(f"  .. minisnn path={other} T {T_mid}", file=sys.stderr, flush=True)
        r = spawn("minisnn", {"threads": args.threads, "batch": B, "steps": T_mid, "time_chunk": tc,
                              "batch_chunk": bc, "path": other}, wdir)
        r.update(time_chunk=tc, batch_chunk=bc, steps=T_mid, batch=B, engine="minisnn", path=other)
        sweep.append(r)
    payload["chunk_sweep"] = sweep

    prof = None
    if not args.no_profile:
        print(f"  .. profile minisnn batch 1 T {args.profile_steps}", file=sys.stderr, flush=True)
        prof = spawn("minisnn", {"threads": args.threads, "batch": 1, "steps": args.profile_steps,
                                 "time_chunk": tc, "batch_chunk": bc, "profile": True}, wdir)
    payload["profile"] = prof

    # ---- 5. report ------------------------------------------------------------------------------------
    report(args, B, results, probes, sweep, prof, calib, payload, torch_available)
    elapsed = time.perf_counter() - t_start
    info = C.machine_info()  # imports numpy/numba/torch: only now, all children are done
    for r in results:
        if r.get("numba_threading_layer"):
            info["numba_threading_layer"] = r["numba_threading_layer"]
            break
    print("machine: " + C.format_machine_info(info))
    print(f"total wall time {elapsed / 60:.1f} min ({elapsed:.0f} s); load average now {C.fmt_loadavg()}")
    payload.update(machine=info, elapsed_s=elapsed)
    path = C.write_json(args.json, payload)
    print(f"wrote {os.path.relpath(path)}")


def _path_label(r):
    """``dense`` / ``event`` / ``auto: dense`` (what the convolutions fed by spikes ran as)."""
    chosen = sorted(set((r.get("paths") or {}).values()))
    req = r.get("path", "auto")
    return f"auto: {'+'.join(chosen) or '-'}" if req == "auto" else req


def _rss(r):
    return (r.get("memory") or {}).get("ru_maxrss_mb")


def report(args, B, results, probes, sweep, prof, calib, payload, torch_available):
    tc, bc = args.time_chunk, args.batch_chunk
    headers = ["engine", "config", "batch", "T", "wall s", "images/s", "img-steps/s", "CPU/wall",
               "peak RSS MiB", "RSS setup MiB", "mean rate Hz"]

    def row(r, note=""):
        if "error" in r:
            return [r.get("engine", "?"), note or "-", r.get("batch"), r.get("steps"), r["error"], None, None, None,
                    None, None, None]
        cfg = (f"block {r['time_chunk']}x{r['batch_chunk'] or 'auto'}, {_path_label(r)}" if r["engine"] == "minisnn"
               else "time-major")
        probe = bool(note)  # short runs: images/s and rates of a 2-10 step run mean little
        return [r["engine"], cfg + note, r["batch"], r["steps"], r["wall_s"], None if probe else r["images_per_s"],
                r["image_steps_per_s"], r["cpu_s"] / r["wall_s"], _rss(r),
                (r.get("setup_memory") or {}).get("vmrss_mb"), None if probe else r["mean_rate_hz"]]

    print(f"\nresults (batch {B}; float32; minisnn path={args.path} with synapse {SYNAPSE}; block = time_chunk x "
          f"batch_chunk; peak RSS = ru_maxrss of the configuration's own process):")
    table = [row(r) for r in results]
    if not torch_available:
        for T in args.steps:
            table.append(["snntorch", "not installed", B, T, "-", None, None, None, None, None, None])
    C.print_table(headers, table, "llrrrrrrrrr")
    odd = [f"{r['engine']} T={r['steps']}: ru_maxrss {_rss(r):.0f}, VmHWM {r['memory']['vmhwm_mb']:.0f} MiB"
           for r in results if "error" not in r and r["memory"].get("vmhwm_mb")
           and abs(_rss(r) / r["memory"]["vmhwm_mb"] - 1.0) > 0.05]
    if odd:
        print("  NOTE: ru_maxrss and VmHWM disagree (> 5%): " + "; ".join(odd))
    busy = [f"{r['engine']} T={r['steps']} ({r['cpu_s'] / r['wall_s']:.2f})" for r in results
            if "error" not in r and r["cpu_s"] / r["wall_s"] < 0.75 * args.threads]
    if busy:
        print(f"  contended (CPU/wall < 0.75 x {args.threads} threads: other processes took CPU time, timings "
              f"are pessimistic): " + ", ".join(busy))

    # ratios and targets
    by = {(r.get("engine"), r.get("steps")): r for r in results if "error" not in r}
    ratio_rows, summary = [], {}
    for T in args.steps:
        m, t = by.get(("minisnn", T)), by.get(("snntorch", T))
        sp = m["images_per_s"] / t["images_per_s"] if m and t else None
        rr = _rss(m) / _rss(t) if m and t else None
        summary[T] = {"speedup": sp, "rss_ratio": rr}
        per_round = (" ".join(f"{tw / mw:.2f}" if mw and tw else "-" for mw, tw in zip(m["round_wall_s"], t["round_wall_s"]))
                     if m and t and "round_wall_s" in m and "round_wall_s" in t else "-")
        ratio_rows.append([f"T={T}", sp, rr] + ([per_round] if args.rounds > 1 else []))
    print("\nminisnn / snnTorch (same batch, same threads"
          + (f"; each engine's fastest of {args.rounds} child processes, run in turn):" if args.rounds > 1 else "):"))
    C.print_table(["T", "images/s ratio", "peak RSS ratio"] + (["images/s ratio, round by round"] if args.rounds > 1 else []),
                  ratio_rows, "lrr" + ("l" if args.rounds > 1 else ""))
    targets = {}
    sp100 = summary.get(100, {}).get("speedup")
    targets["speedup_T100"] = {"value": sp100, "target": TARGET_SPEEDUP,
                               "met": None if sp100 is None else sp100 >= TARGET_SPEEDUP}
    m50, m200 = by.get(("minisnn", 50)), by.get(("minisnn", 200))
    flat = _rss(m200) / _rss(m50) - 1.0 if m50 and m200 else None
    targets["rss_T200_vs_T50"] = {"value": flat, "target": TARGET_FLAT_RSS,
                                  "met": None if flat is None else abs(flat) <= TARGET_FLAT_RSS}
    rr200 = summary.get(200, {}).get("rss_ratio")
    targets["rss_ratio_T200"] = {"value": rr200, "target": TARGET_RSS_RATIO,
                                 "met": None if rr200 is None else rr200 <= TARGET_RSS_RATIO}
    print("targets (issue 3):")
    print(f"  minisnn images/s >= {TARGET_SPEEDUP:g}x snnTorch at T=100: "
          + (f"{sp100:.2f}x  {ok(targets['speedup_T100']['met'])}" if sp100 is not None else "- (not measured)"))
    print(f"  minisnn peak RSS at T=200 within {TARGET_FLAT_RSS:.0%} of T=50: "
          + (f"{_rss(m200):.0f} vs {_rss(m50):.0f} MiB ({flat:+.1%})  {ok(targets['rss_T200_vs_T50']['met'])}"
             if flat is not None else "- (needs T=50 and T=200)"))
    print(f"  minisnn peak RSS <= {TARGET_RSS_RATIO:.2g} x snnTorch's (T=200, batch {B}): "
          + (f"{rr200:.2f}  {ok(targets['rss_ratio_T200']['met'])}" if rr200 is not None else "- (not measured)"))

    if probes:
        print(f"\nmemory probe at batch {FULL_BATCH} (short runs: peak RSS of minisnn's block does not grow with T "
              f"beyond time_chunk, snnTorch's does not grow with T at all; img-steps/s for reference):")
        C.print_table(headers, [row(r, " (probe)") for r in probes], "llrrrrrrrrr")
        pm = next((r for r in probes if r.get("engine") == "minisnn" and "error" not in r), None)
        pt = next((r for r in probes if r.get("engine") == "snntorch" and "error" not in r), None)
        if pm and pt:
            rr = _rss(pm) / _rss(pt)
            targets["rss_ratio_batch32_probe"] = {"value": rr, "target": TARGET_RSS_RATIO, "met": rr <= TARGET_RSS_RATIO}
            print(f"  peak RSS ratio minisnn/snnTorch at batch {FULL_BATCH}: {rr:.2f}  "
                  f"(target <= {TARGET_RSS_RATIO:.2g}: {ok(rr <= TARGET_RSS_RATIO)})")
            t_is = FULL_BATCH / per_step_after_first(pt)
            sp = pm["image_steps_per_s"] / t_is
            targets["speed_ratio_batch32_probe"] = {"value": sp, "target": TARGET_SPEEDUP, "met": sp >= TARGET_SPEEDUP}
            print(f"  speed at batch {FULL_BATCH}: minisnn {pm['image_steps_per_s']:.2f} img-steps/s ({pm['steps']} "
                  f"steps), snnTorch {t_is:.2f} img-steps/s (median of its steps after the first): ratio {sp:.2f}x; "
                  f"both engines' time per image-step hardly depends on T, so this estimates the images/s ratio at "
                  f"batch {FULL_BATCH} (target >= {TARGET_SPEEDUP:g}x: {ok(sp >= TARGET_SPEEDUP)})")
    if sweep:
        T_mid = sweep[0]["steps"]
        main = [r for r in results if r.get("engine") == "minisnn" and r.get("steps") == T_mid and "error" not in r]
        rows_sw = sorted(main + sweep, key=lambda r: (r.get("time_chunk", 0) * (r.get("batch_chunk") or B)))
        print(f"\nminisnn block sweep and dense vs event path (batch {B}, T={T_mid}; memory and speed against the block size "
              f"time_chunk x batch_chunk):")
        C.print_table(headers, [row(r) for r in rows_sw], "llrrrrrrrrr")
        if len(rows_sw) >= 2:
            lo, hi = rows_sw[0], rows_sw[-1]
            n_lo, n_hi = (min(r["time_chunk"], T_mid) * min(r["batch_chunk"] or B, B) for r in (lo, hi))
            if n_hi > n_lo:
                slope = (_rss(hi) - _rss(lo)) / (n_hi - n_lo)
                payload["block_mib_per_image_step"] = slope
                print(f"  ~{slope:.0f} MiB of peak RSS per image-step in the block; simulate's default "
                      f"batch_chunk=None picks the batch chunk that keeps the block's buffers under "
                      f"minisnn.simulate.BLOCK_BYTES (1 GiB), so the whole batch of {FULL_BATCH} at time_chunk 50 "
                      f"(~{slope * 50 * FULL_BATCH / 1024:.0f} GiB) is never held at once")

    # firing rates
    print(f"\nmeasured firing rates, Hz (average over neurons, images and all steps; target band "
          f"{RATE_BAND[0]:.0f}-{RATE_BAND[1]:.0f} Hz for minisnn; snnTorch has no refractory period and no "
          f"synapse, so the same currents give it higher rates):")
    rate_cols = [("calib T=%s" % calib.get("calib_steps", "?"), calib["rates_full_net"])]
    for r in results:
        if "error" not in r:
            rate_cols.append((("mini" if r["engine"] == "minisnn" else "snnT") + f" T={r['steps']}", r["rates_hz"]))
    geo = layer_geometry()
    rrows = []
    for g in geo:
        rrows.append([g["name"], "x".join(map(str, g["out_shape"]))] + [c[g["name"]] for _, c in rate_cols])
    C.print_table(["layer", "units"] + [n for n, _ in rate_cols], rrows, "ll" + "r" * len(rate_cols))
    mini_rates = [v for r in results if r.get("engine") == "minisnn" and "error" not in r for v in r["rates_hz"].values()]
    if mini_rates:
        inside = all(RATE_BAND[0] <= v <= RATE_BAND[1] for v in mini_rates)
        print(f"  minisnn rates within {RATE_BAND[0]:.0f}-{RATE_BAND[1]:.0f} Hz in every layer and run: "
              f"{'yes' if inside else 'NO'} (min {min(mini_rates):.0f}, max {max(mini_rates):.0f})")
        targets["rates_in_band"] = {"value": [min(mini_rates), max(mini_rates)], "met": inside}

    # where minisnn spends its time
    if prof and "profile" in prof:
        p = prof["profile"]
        tot = p["total_s"]
        print(f"\nwhere minisnn spends its time (wall-clock timers around its pieces, batch 1, T={prof['steps']}, "
              f"block {tc}x{bc or 'auto'}; {tot:.2f} s = {tot / prof['steps'] * 1e3:.0f} ms per image-step):")
        crow = [[k, v, 100.0 * v / tot] for k, v in sorted(p["categories_s"].items(), key=lambda kv: -kv[1])]
        C.print_table(["part", "s", "%"], crow, "lrr")
        pl = p["per_layer_s"]
        order = LAYER_NAMES + ["readout"]
        keys = ["conv_forward_total", "im2col", "conv_gemm_per_image", "dense_forward", "lif_run_total", "lif_kernel"]
        lrows = [[name] + [pl.get(name, {}).get(k) for k in keys] for name in order if name in pl]
        print("per layer, s (conv total includes its im2col and GEMM; LIF total includes the kernel):")
        C.print_table(["layer", "conv total", "im2col", "GEMM per-image", "dense", "LIF total", "LIF kernel"],
                      lrows, "lrrrrrr")
    elif prof:
        print(f"\nprofile run failed: {prof.get('error')}")
    payload["summary"] = summary
    payload["targets_result"] = targets


if __name__ == "__main__":
    main()
