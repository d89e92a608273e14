#!/usr/bin/env python
"""Per-layer speed of minisnn's conv2d / conv_transpose2d / dense ops at LocNet and CAE shapes.

For every layer it times (medians of --repeats runs, float32, --threads threads for numba,
BLAS and torch alike):

* minisnn forward, and forward + backward (dx, dw, db all computed);
* the same-run numpy GEMM throughput of the layer's equivalent single matrix product
  (preallocated output), and the ratio of minisnn's fwd+bwd GFLOP/s to it;
* PyTorch CPU's forward + backward of the same op (x, w, b requiring grad), timed in a child
  process with the same thread settings (see ``torch_worker``), and the ratio
  torch_time / minisnn_time (> 1: minisnn is faster).

FLOPs are counted as 2*MACs for the forward and 3 * that for forward + backward, MACs being
those of the direct algorithm (the im2col GEMM).  3x3 stride-1 layers with >= 8 input
channels run as Winograd F(2x2, 3x3), which does 2.25x fewer multiplications, so their
GFLOP/s is an *effective* rate (direct-algorithm FLOPs / time, as cuDNN and oneDNN benchmarks
report it) and can exceed the GEMM's.

    python benchmarks/bench_ops.py [--only loc|cae|all] [--threads 2] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

GEMM_TARGET = 0.5  # conv fwd+bwd GFLOP/s >= this fraction of the same-run GEMM GFLOP/s ...
TARGET_MIN_CHANNELS = 32  # ... on conv layers whose in and out channels are both >= this
TORCH_TARGET = 0.8  # sum over LocNet: torch_time / minisnn_time >= this
REF_GEMM_SIZE = 2048
MIN_LAYER_S = 0.5  # timed work per layer; fast layers get more than --repeats rounds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=None, help="batch for both nets (default: LocNet 8, CAE 64)")
    p.add_argument("--loc-batch", type=int, default=None, help="LocNet batch (default 8)")
    p.add_argument("--cae-batch", type=int, default=None, help="CAE batch (default 64)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba, BLAS and torch (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    p.add_argument("--only", choices=("loc", "cae", "all"), default="all")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    p.add_argument(
        "--torch-mode", choices=("subprocess", "inprocess"), default="subprocess",
        help="time torch in a child process with the same thread settings (default), or in this "
             "process round-robin with minisnn (then OpenBLAS's spinning worker threads slow torch down)",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: the torch child
    p.add_argument(
        "--json",
        default="bench_ops.json",
        help="JSON output; a bare file name goes to benchmarks/out/ (default bench_ops.json)",
    )
    a = p.parse_args(argv)
    a.loc_batch = a.loc_batch or a.batch or 8
    a.cae_batch = a.cae_batch or a.batch or 64
    return a


# ----------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class Layer:
    net: str
    name: str
    kind: str  # "conv" | "convT" | "dense"
    cin: int
    cout: int
    h: int = 1  # input plane (conv / convT)
    w: int = 1
    k: int = 1
    stride: int = 1
    pad: int = 0

    def out_hw(self):
        if self.kind == "conv":
            return ((self.h + 2 * self.pad - self.k) // self.stride + 1,
                    (self.w + 2 * self.pad - self.k) // self.stride + 1)
        if self.kind == "convT":
            return ((self.h - 1) * self.stride - 2 * self.pad + self.k,
                    (self.w - 1) * self.stride - 2 * self.pad + self.k)
        return 1, 1

    def macs(self, n):
        ho, wo = self.out_hw()
        if self.kind == "conv":
            return n * self.cout * ho * wo * self.cin * self.k * self.k
        if self.kind == "convT":
            return n * self.cin * self.h * self.w * self.cout * self.k * self.k
        return n * self.cin * self.cout

    def gemm_mkn(self, n):
        """(M, K, N) of the equivalent single GEMM ``(M x K) @ (K x N)``.

        conv:  (Cout x Cin*k*k) @ (Cin*k*k x n*Ho*Wo)
        convT: the conv2d it is the adjoint of: (Cin x Cout*k*k) @ (Cout*k*k x n*H*W)
        dense: (n x in) @ (in x out)
        """
        ho, wo = self.out_hw()
        if self.kind == "conv":
            return self.cout, self.cin * self.k * self.k, n * ho * wo
        if self.kind == "convT":
            return self.cin, self.cout * self.k * self.k, n * self.h * self.w
        return n, self.cin, self.cout

    def targeted(self):
        return self.kind in ("conv", "convT") and min(self.cin, self.cout) >= TARGET_MIN_CHANNELS

    def shape_str(self):
        if self.kind == "dense":
            return f"{self.cin} -> {self.cout}"
        ho, wo = self.out_hw()
        return (f"{self.cin}x{self.h}x{self.w} -> {self.cout}x{ho}x{wo} "
                f"k{self.k} s{self.stride} p{self.pad}")


def locnet_layers():
    L = []
    c, h, w = 3, 200, 300
    for i, (co, s) in enumerate([(32, 1), (32, 2), (64, 1), (64, 2), (128, 1), (128, 2)], 1):
        lay = Layer("LocNet", f"conv{i}", "conv", c, co, h, w, 3, s, 1)
        L.append(lay)
        c, (h, w) = co, lay.out_hw()
    feats = c * h * w
    assert feats == 121600, feats
    for i, (fi, fo) in enumerate([(feats, 512), (512, 256), (256, 64), (64, 4)], 1):
        L.append(Layer("LocNet", f"fc{i}", "dense", fi, fo))
    return L


def cae_layers():
    # encoder: conv3x3 p1 then avgpool 2 (pool not timed): 24x56 -> 12x28 -> 6x14 -> 3x7
    L = [
        Layer("CAE", "enc1", "conv", 1, 32, 24, 56, 3, 1, 1),
        Layer("CAE", "enc2", "conv", 32, 64, 12, 28, 3, 1, 1),
        Layer("CAE", "enc3", "conv", 64, 128, 6, 14, 3, 1, 1),
        Layer("CAE", "enc4", "conv", 128, 256, 3, 7, 3, 1, 1),
        # decoder: transposed conv k2 s2 doubles the plane: 3x7 -> 6x14 -> 12x28 -> 24x56
        Layer("CAE", "dec1", "convT", 256, 128, 3, 7, 2, 2, 0),
        Layer("CAE", "dec2", "convT", 128, 64, 6, 14, 2, 2, 0),
        Layer("CAE", "dec3", "convT", 64, 32, 12, 28, 2, 2, 0),
        Layer("CAE", "out", "conv", 32, 1, 24, 56, 1, 1, 0),
    ]
    return L


# ----------------------------------------------------------------------------- measurement


def make_data(np, lay, n, rng):
    f32 = np.float32
    if lay.kind == "dense":
        x = rng.standard_normal((n, lay.cin), dtype=f32)
        w = (rng.standard_normal((lay.cout, lay.cin), dtype=f32) * np.sqrt(2.0 / lay.cin)).astype(f32)
    elif lay.kind == "conv":
        x = rng.standard_normal((n, lay.cin, lay.h, lay.w), dtype=f32)
        fan_in = lay.cin * lay.k * lay.k
        w = (rng.standard_normal((lay.cout, lay.cin, lay.k, lay.k), dtype=f32) * np.sqrt(2.0 / fan_in)).astype(f32)
    else:
        x = rng.standard_normal((n, lay.cin, lay.h, lay.w), dtype=f32)
        fan_in = lay.cin * lay.k * lay.k
        w = (rng.standard_normal((lay.cin, lay.cout, lay.k, lay.k), dtype=f32) * np.sqrt(2.0 / fan_in)).astype(f32)
    b = (0.1 * rng.standard_normal(lay.cout, dtype=f32)).astype(f32)
    return x, w, b


def minisnn_pair(ops, lay):
    if lay.kind == "conv":
        return (lambda x, w, b: ops.conv2d_forward(x, w, b, lay.stride, lay.pad)), ops.conv2d_backward
    if lay.kind == "convT":
        return (lambda x, w, b: ops.conv_transpose2d_forward(x, w, b, lay.stride, lay.pad)), ops.conv_transpose2d_backward
    return ops.dense_forward, ops.dense_backward


def torch_op(torch, lay):
    F = torch.nn.functional
    if lay.kind == "conv":
        return lambda x, w, b: F.conv2d(x, w, b, lay.stride, lay.pad)
    if lay.kind == "convT":
        return lambda x, w, b: F.conv_transpose2d(x, w, b, lay.stride, lay.pad)
    return F.linear


def rel_err(np, a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def bench_layer(np, ops, torch, lay, n, repeats, warmup, rng, torch_inprocess=False):
    """Time one layer: minisnn fwd, minisnn fwd+bwd and the equivalent GEMM (and torch fwd+bwd
    when ``torch_inprocess``) round-robin (see :func:`_common.interleaved_samples`); cross-check
    the results against torch once (untimed)."""
    x, w, b = make_data(np, lay, n, rng)
    fwd, bwd = minisnn_pair(ops, lay)
    y, cache = fwd(x, w, b)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    ms_dx, ms_dw, ms_db = bwd(dy, cache)
    del cache

    def mini_f():
        fwd(x, w, b)

    def mini_fb():
        _, c = fwd(x, w, b)
        bwd(dy, c)

    # the equivalent single GEMM, preallocated output
    M, K, Ncols = lay.gemm_mkn(n)
    if lay.kind == "dense":
        A, B = x, w.T  # exactly the op's product: (n x in) @ (in x out)
    else:
        A = rng.standard_normal((M, K), dtype=np.float32)
        B = rng.standard_normal((K, Ncols), dtype=np.float32)
    G = np.empty((M, Ncols), dtype=np.float32)

    def gemm():
        np.matmul(A, B, out=G)

    fns = {"fwd": mini_f, "fwd_bwd": mini_fb, "gemm": gemm}
    check = None
    if torch is not None:
        op = torch_op(torch, lay)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        wt = torch.from_numpy(w.copy()).requires_grad_()
        bt = torch.from_numpy(b.copy()).requires_grad_()
        dyt = torch.from_numpy(dy.copy())

        def torch_fb():
            yt = op(xt, wt, bt)
            torch.autograd.grad(yt, (xt, wt, bt), dyt)

        # correctness cross-check (once, untimed)
        yt = op(xt, wt, bt)
        gx, gw, gb = torch.autograd.grad(yt, (xt, wt, bt), dyt)
        check = {
            "y": rel_err(np, y, yt.detach().numpy()),
            "dx": rel_err(np, ms_dx, gx.numpy()),
            "dw": rel_err(np, ms_dw, gw.numpy()),
            "db": rel_err(np, ms_db, gb.numpy()),
        }
        del yt, gx, gw, gb
        if torch_inprocess:
            fns["torch"] = torch_fb
    del y, ms_dx, ms_dw, ms_db

    # cheap layers get more rounds (about MIN_LAYER_S of timed work), never fewer than --repeats
    S = C.interleaved_samples(fns, repeats, warmup, min_total_s=MIN_LAYER_S, max_repeats=max(repeats, 50))
    med = {k: statistics.median(v) for k, v in S.items()}
    mn = {k: min(v) for k, v in S.items()}

    flop_f = 2.0 * lay.macs(n)
    flop_fb = 3.0 * flop_f
    row = {
        "net": lay.net, "layer": lay.name, "kind": lay.kind, "batch": n, "shape": lay.shape_str(),
        "cin": lay.cin, "cout": lay.cout, "h": lay.h, "w": lay.w, "k": lay.k, "stride": lay.stride, "pad": lay.pad,
        "out_hw": list(lay.out_hw()), "macs": lay.macs(n), "flop_fwd": flop_f, "flop_fwd_bwd": flop_fb,
        "fwd_s": med["fwd"], "fwd_s_min": mn["fwd"], "fwd_bwd_s": med["fwd_bwd"], "fwd_bwd_s_min": mn["fwd_bwd"],
        "fwd_gflops": flop_f / med["fwd"] / 1e9, "fwd_bwd_gflops": flop_fb / med["fwd_bwd"] / 1e9,
        "gemm_mkn": [M, K, Ncols], "gemm_s": med["gemm"], "gemm_s_min": mn["gemm"],
        "gemm_gflops": flop_f / med["gemm"] / 1e9,
        "targeted": lay.targeted(),
        "repeats": len(S["fwd"]),
        "samples_s": S,
        "check_rel_err": check,
    }
    row["fwd_bwd_over_gemm"] = row["fwd_bwd_gflops"] / row["gemm_gflops"]
    # the same ratio from the best runs (less sensitive to other load on the machine)
    row["fwd_bwd_over_gemm_best"] = 3.0 * mn["gemm"] / mn["fwd_bwd"]
    row["meets_gemm_target"] = (row["fwd_bwd_over_gemm"] >= GEMM_TARGET) if lay.targeted() else None
    if "torch" in S:
        add_torch_times(row, S["torch"], paired=S["fwd_bwd"])
    else:
        row.update(torch_fwd_bwd_s=None, torch_over_minisnn=None)
    # flag measurements whose samples spread more than 2x (another process got in the way)
    row["noisy"] = sorted(k for k, v in S.items() if max(v) > 2.0 * min(v))
    return row


def add_torch_times(row, samples, paired=None):
    med, mn = statistics.median(samples), min(samples)
    row.update(
        torch_fwd_bwd_s=med, torch_fwd_bwd_s_min=mn,
        torch_fwd_bwd_gflops=row["flop_fwd_bwd"] / med / 1e9,
        torch_over_minisnn=med / row["fwd_bwd_s"],
        torch_over_minisnn_best=mn / row["fwd_bwd_s_min"],
    )
    row.setdefault("samples_s", {})["torch"] = list(samples)
    if paired is not None:
        row["torch_over_minisnn_paired_median"] = statistics.median(t / m for t, m in zip(samples, paired))
    if max(samples) > 2.0 * min(samples):
        row["noisy"] = sorted(set(row.get("noisy", [])) | {"torch"})


# ----------------------------------------------------------------------------- torch in a child process
#
# OpenBLAS's worker threads busy-wait for a while (tenths of a second) after every threaded
# GEMM.  In one process with numpy on 2 cores they starve torch's OpenMP workers, so a torch op
# that follows a numpy GEMM can take 10-100x longer (a 0.2 ms linear becomes 40 ms).  The peer
# is therefore timed in a child process with the same thread settings, one child per net.

TORCH_MIN_TOTAL_S = 0.3


def torch_worker(role: str, job: dict) -> dict:
    """The torch child's case (:func:`_common.worker_main`): ``{"samples": [[s, ...], ...]}``."""
    import torch

    torch.set_num_threads(job["threads"])
    g = torch.Generator().manual_seed(0)
    out = []
    for spec in job["layers"]:
        n = spec.pop("batch")
        lay = Layer(**spec)
        if lay.kind == "dense":
            xs, ws = (n, lay.cin), (lay.cout, lay.cin)
        elif lay.kind == "conv":
            xs, ws = (n, lay.cin, lay.h, lay.w), (lay.cout, lay.cin, lay.k, lay.k)
        else:
            xs, ws = (n, lay.cin, lay.h, lay.w), (lay.cin, lay.cout, lay.k, lay.k)
        xt = torch.randn(xs, generator=g).requires_grad_()
        wt = (0.05 * torch.randn(ws, generator=g)).requires_grad_()
        bt = torch.zeros(lay.cout).requires_grad_()
        op = torch_op(torch, lay)
        with torch.no_grad():
            dyt = torch.randn(op(xt, wt, bt).shape, generator=g)

        def torch_fb():
            yt = op(xt, wt, bt)
            torch.autograd.grad(yt, (xt, wt, bt), dyt)

        S = C.interleaved_samples({"torch": torch_fb}, job["repeats"], job["warmup"],
                                  min_total_s=TORCH_MIN_TOTAL_S, max_repeats=max(job["repeats"], 50))
        out.append(S["torch"])
        del xt, wt, bt, dyt
    return {"samples": out, "torch": torch.__version__, "threads": torch.get_num_threads()}


def torch_in_child(layers, n, args):
    """Run :func:`torch_worker` in a child process; ``None`` (with a message) if it fails."""
    job = {"threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
           "layers": [{**lay.__dict__, "batch": n} for lay in layers]}
    r = C.spawn(__file__, "torch", job, C.peer_env())
    if "error" in r:
        print(r["error"], flush=True)
        return None
    return r


def ref_sgemm(np, rng, repeats, warmup):
    s = REF_GEMM_SIZE
    a = rng.standard_normal((s, s), dtype=np.float32)
    b = rng.standard_normal((s, s), dtype=np.float32)
    c = np.empty((s, s), dtype=np.float32)
    t, t_min = C.median_time(lambda: np.matmul(a, b, out=c), repeats, warmup)
    return {"size": s, "s": t, "s_min": t_min, "gflops": 2.0 * s**3 / t / 1e9, "gflops_best": 2.0 * s**3 / t_min / 1e9}


HEADERS = ["layer", "shape (C x H x W)", "fwd ms", "f+b ms", "fwd GF/s", "f+b GF/s",
           "GEMM GF/s", "f+b/GEMM", "tgt", "torch f+b ms", "torch/mini"]
ALIGN = "llrrrrrrlrr"


def table_row(r, torch_missing):
    if r["targeted"]:
        tgt = "* ok" if r["meets_gemm_target"] else "* MISS"
    else:
        tgt = ""
    if torch_missing:
        t_ms, t_ratio = "not installed", "-"
    else:
        t_ms, t_ratio = r["torch_fwd_bwd_s"] * 1e3, r["torch_over_minisnn"]
    return [r["layer"], r["shape"], r["fwd_s"] * 1e3, r["fwd_bwd_s"] * 1e3, r["fwd_gflops"], r["fwd_bwd_gflops"],
            r["gemm_gflops"], r["fwd_bwd_over_gemm"], tgt, t_ms, t_ratio]


def summarize(rows, torch_missing):
    mini = sum(r["fwd_bwd_s"] for r in rows)
    out = {"minisnn_fwd_bwd_s": mini, "minisnn_fwd_bwd_s_best": sum(r["fwd_bwd_s_min"] for r in rows)}
    if not torch_missing:
        tor = sum(r["torch_fwd_bwd_s"] for r in rows)
        tor_best = sum(r["torch_fwd_bwd_s_min"] for r in rows)
        out.update(torch_fwd_bwd_s=tor, torch_over_minisnn=tor / mini,
                   torch_fwd_bwd_s_best=tor_best, torch_over_minisnn_best=tor_best / out["minisnn_fwd_bwd_s_best"])
    return out


# ----------------------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    if args.worker:
        return C.worker_main(args.worker, torch_worker)  # nothing heavy imported yet
    C.use_minisnn_env()  # the torch child gets the peer's own (--torch-mode inprocess shares these)
    t_start = time.perf_counter()

    import numpy as np

    import minisnn.ops as ops
    from minisnn import reuse_freed_memory
    from minisnn.kernels import warmup as warm_kernels

    reuse_freed_memory()  # as minisnn-train does (in-process torch shares it)
    torch = None if args.no_torch else C.try_import_torch()
    torch_missing = torch is None
    threads = C.set_threads(args.threads)
    warm_kernels()  # compile / load the numba kernels before any timing
    rng = np.random.default_rng(0)

    info = C.machine_info()
    print(f"minisnn ops benchmark  ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    print("machine: " + C.format_machine_info(info))
    print(f"threads: {args.threads} (numba={threads.get('numba')}, torch={threads.get('torch')}, "
          f"BLAS: {threads.get('blas') if isinstance(threads.get('blas'), str) else 'threadpoolctl'})")
    print(f"float32; medians of >= {args.repeats} runs (more for fast layers) after {args.warmup} warm-up, "
          f"the ops of a layer timed round-robin; "
          f"FLOPs = 2*MACs (fwd), 3x that (fwd+bwd: y, dx, dw)")
    if torch_missing:
        print("torch: not installed" if not args.no_torch else "torch: skipped (--no-torch)")
    elif args.torch_mode == "subprocess":
        print("torch: timed in a child process (same threads), after minisnn's layers of each net")
    else:
        print("torch: timed in this process, round-robin with minisnn")

    ref = ref_sgemm(np, rng, args.repeats, args.warmup)
    print(f"reference sgemm {ref['size']}^3: {ref['gflops']:.1f} GFLOP/s median ({ref['gflops_best']:.1f} best); "
          f"load average {C.fmt_loadavg()}\n")

    nets = []
    if args.only in ("loc", "all"):
        nets.append(("LocNet", locnet_layers(), args.loc_batch))
    if args.only in ("cae", "all"):
        nets.append(("CAE", cae_layers(), args.cae_batch))

    results = {"rows": [], "summary": {}}
    for net, layers, n in nets:
        rows = []
        for lay in layers:
            print(f"  .. {net} {lay.name} {lay.shape_str()}", file=sys.stderr, flush=True)
            r = bench_layer(np, ops, torch, lay, n, args.repeats, args.warmup, rng,
                            torch_inprocess=args.torch_mode == "inprocess")
            rows.append(r)
            err = r.get("check_rel_err")
            if err and max(err.values()) > 1e-3:
                print(f"WARNING: {net} {lay.name} disagrees with torch: {err}", flush=True)
        if torch is not None and args.torch_mode == "subprocess":
            print(f"  .. {net}: torch in a child process", file=sys.stderr, flush=True)
            child = torch_in_child(layers, n, args)
            if child is None:
                for r in rows:
                    r.update(torch_fwd_bwd_s=float("nan"), torch_fwd_bwd_s_min=float("nan"),
                             torch_over_minisnn=float("nan"))
            else:
                for r, samples in zip(rows, child["samples"]):
                    add_torch_times(r, samples)
        print(f"{net}, batch {n}:")
        C.print_table(HEADERS, [table_row(r, torch_missing) for r in rows], ALIGN)
        s = summarize(rows, torch_missing)
        results["rows"].extend(rows)
        results["summary"][net] = {"batch": n, **s}
        line = f"{net} sum of fwd+bwd over {len(rows)} layers: minisnn {s['minisnn_fwd_bwd_s'] * 1e3:.1f} ms"
        if torch_missing:
            line += ", torch: not installed"
        else:
            ratio = s["torch_over_minisnn"]
            line += f", torch {s['torch_fwd_bwd_s'] * 1e3:.1f} ms, torch/minisnn = {ratio:.2f}x"
            if net == "LocNet":
                line += f" (target >= {TORCH_TARGET}: {'ok' if ratio >= TORCH_TARGET else 'MISS'})"
            line += f"; from best runs {s['torch_over_minisnn_best']:.2f}x"
        print(line)
        for r in rows:
            if r["noisy"]:
                spread = ", ".join(f"{k} {min(r['samples_s'][k]) * 1e3:.1f}..{max(r['samples_s'][k]) * 1e3:.1f} ms"
                                   for k in r["noisy"])
                print(f"  noisy (samples spread > 2x): {r['layer']}: {spread}")
        tg = [r for r in rows if r["targeted"]]
        if tg:
            ok = sum(bool(r["meets_gemm_target"]) for r in tg)
            print(f"{net} layers with >= {TARGET_MIN_CHANNELS} in and out channels (*) at >= "
                  f"{GEMM_TARGET:.0%} of GEMM: {ok}/{len(tg)}")
        print()

    ref_end = ref_sgemm(np, rng, args.repeats, args.warmup)
    print(f"reference sgemm {ref_end['size']}^3 again at the end: {ref_end['gflops']:.1f} GFLOP/s median "
          f"({ref_end['gflops_best']:.1f} best); load average now {C.fmt_loadavg()}")
    elapsed = time.perf_counter() - t_start
    rss = C.peak_rss_mb()
    print("legend: f+b = forward + backward (dx, dw, db); GEMM GF/s = same-run numpy GEMM of the layer's "
          "equivalent single product (conv: (Cout x Cin*k*k) @ (Cin*k*k x N*Ho*Wo); convT: its adjoint conv "
          "(Cin x Cout*k*k) @ (Cout*k*k x N*H*W); dense: (N x in) @ (in x out)); f+b/GEMM = f+b GF/s / GEMM GF/s; "
          f"tgt * = targeted row (target >= {GEMM_TARGET}); torch/mini > 1 means minisnn is faster.")
    print(f"total run time {elapsed:.1f} s, peak RSS {rss:.0f} MiB")

    info = C.machine_info()  # again: numba's threading layer is known only now
    payload = {
        "benchmark": "bench_ops",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "argv": sys.argv[1:],
        "options": vars(args),
        "threads": threads,
        "machine": info,
        "flop_convention": "fwd = 2*MACs; fwd+bwd = 3 * fwd",
        "targets": {"gemm_fraction": GEMM_TARGET, "min_channels": TARGET_MIN_CHANNELS,
                    "locnet_torch_over_minisnn": TORCH_TARGET},
        "reference_sgemm": ref,
        "reference_sgemm_end": ref_end,
        **results,
        "elapsed_s": elapsed,
        "peak_rss_mb": rss,
    }
    path = C.write_json(args.json, payload)
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
