#!/usr/bin/env python
"""One ANN training step of LocNet and of the CAE: minisnn vs the same networks in PyTorch.

A training step is: zero the gradients, forward, loss, backward, Adam (lr 1e-3), float32, on a
seeded random batch.  The networks are those of the apps:

* **LocNet** (``apps/loc.py`` ``build_locnet``): input 3 x 200 x 300,
  [conv 3x3 p1 -> stride-2 conv 3x3 p1] at widths 32, 64, 128 (each conv followed by soft-LIF
  rate neurons, sigma 0.005, amplitude 0.01), Flatten, dense 121600-512-256-64 (soft-LIF), a
  linear 64->4; MSE on 4 box coordinates; batch 32.
* **CAE** (``apps/seg.py`` ``build_cae``): input 1 x 24 x 56, widths 16-32-64:
  conv x2 -> avgpool 2 -> conv x2 -> avgpool 2 -> conv x2 -> transposed conv 2x2 s2 -> conv ->
  transposed conv 2x2 s2 -> conv 3x3 to 1 logit map; rectified-linear neurons
  (scale_firing_rates 1000); loss 0.5 BCE-with-logits + 0.5 soft Dice; batch 64.

PyTorch runs the same layers with the same initial weights (saved by the minisnn child and
loaded by the torch child; a forward pass on two images is compared once, untimed), soft-LIF
written with torch ops (softplus, log1p: what a PyTorch user would write), ReLU for the
rectified-linear neurons.  Every case (engine x net x batch) runs in its own child process
with the same thread settings; the parent imports nothing heavy until all children are done.

Reported per case: the median step time of --repeats steps after --warmup steps (by default
3 after 1 for LocNet, 20 after 3 for the CAE, the same for both engines), images/s,
CPU/wall, and the peak RSS of the steps (``VmHWM``, reset just before the first step: the
resident weights, optimizer state and data plus what the steps allocate; the whole process's
peak is in the JSON).  Target (issue 7): minisnn images/s >= 1.0x PyTorch's on both nets.

A case runs in ``--rounds`` rounds (by default 1 for LocNet, 3 for the CAE): minisnn's child,
then PyTorch's, again and again.  Each round gives one ratio from two children that ran back to
back; the case's ratio is the median of its rounds' ratios, and all of them are printed.  On a
shared host the pace drifts between processes: a CAE child takes ~12 s, and one run's single
pair of children read anywhere from 0.87x to 1.31x (``docs/results.md``).

    python benchmarks/bench_train.py                       # LocNet batch 32 + CAE batch 64
    python benchmarks/bench_train.py --nets cae --cae-batch 16 32 64 128 --no-torch
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SPEED_TARGET = 1.0  # minisnn images/s >= this x PyTorch's
SIGMA, AMPLITUDE, TAU_RC, TAU_REF = 0.005, 0.01, 0.02, 0.002  # LocNet's soft-LIF (LocConfig defaults)
CAE_SCALE = 1000.0  # SegConfig.scale: scale_firing_rates of the rectified-linear layers
ENGINES = ("minisnn", "torch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", choices=("loc", "cae"), default=["loc", "cae"])
    p.add_argument("--loc-batch", type=int, nargs="+", default=[32], help="LocNet batch size(s) (default 32)")
    p.add_argument("--cae-batch", type=int, nargs="+", default=[64], help="CAE batch size(s) (default 64)")
    p.add_argument("--loc-size", type=int, nargs=2, default=[200, 300], metavar=("H", "W"))
    p.add_argument("--loc-widths", type=int, nargs=3, default=[32, 64, 128])
    p.add_argument("--loc-dense", type=int, nargs="+", default=[512, 256, 64])
    p.add_argument("--cae-size", type=int, nargs=2, default=[24, 56], metavar=("H", "W"))
    p.add_argument("--cae-widths", type=int, nargs=3, default=[16, 32, 64])
    p.add_argument("--repeats", type=int, default=None,
                   help="timed steps per case (default: LocNet 3, CAE 20; a CAE step takes ~0.1 s and "
                        "varies by +-15 %% from step to step on a shared machine, so 3 of them gave ratios "
                        "from 0.84x to 1.1x)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: LocNet 1, CAE 3)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds per case: each round runs minisnn's child, then PyTorch's, and gives one "
                        "ratio; the case's ratio is the median of its rounds' (default: LocNet 1, CAE 3; "
                        "a CAE child takes ~12 s, and this host's pace drifts by up to 1.5x between "
                        "two of them)")
    p.add_argument("--threads", type=int, default=2, help="threads for numba, BLAS and torch (default 2)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--mem-limit-gb", type=float, default=0.0, help="address-space limit per child (0: none)")
    p.add_argument("--json", default="bench_train.json",
                   help="JSON output; a bare file name goes to benchmarks/out/ (default bench_train.json)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: engine:net:batch
    p.add_argument("--wdir", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if (a.repeats is not None and a.repeats < 1) or (a.warmup is not None and a.warmup < 0):
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if a.rounds is not None and a.rounds < 1:
        p.error("--rounds must be >= 1")
    return a


#: (warm-up steps, timed steps) per net when --warmup / --repeats are not given: the same for
#: both engines; a LocNet step takes seconds, a CAE step a tenth of one
DEFAULT_STEPS = {"loc": (1, 3), "cae": (3, 20)}


#: rounds per net when --rounds is not given
DEFAULT_ROUNDS = {"loc": 1, "cae": 3}


def rounds_for(args, net: str) -> int:
    return DEFAULT_ROUNDS[net] if args.rounds is None else args.rounds


def steps_for(args, net: str) -> tuple[int, int]:
    """``(warmup, repeats)`` of a case: the options if given, else :data:`DEFAULT_STEPS`."""
    warmup, repeats = DEFAULT_STEPS[net]
    return (warmup if args.warmup is None else args.warmup), (repeats if args.repeats is None else args.repeats)


def describe(args, net: str) -> str:
    if net == "loc":
        H, W = args.loc_size
        return (f"LocNet 3x{H}x{W}, widths {'-'.join(map(str, args.loc_widths))}, dense "
                f"{'-'.join(map(str, args.loc_dense))}-4, soft-LIF, MSE")
    H, W = args.cae_size
    return f"CAE 1x{H}x{W}, widths {'-'.join(map(str, args.cae_widths))}, ReLU, 0.5 BCE + 0.5 Dice"


# ----------------------------------------------------------------------------- data


def make_batch(args, net: str, B: int):
    import numpy as np

    rng = np.random.default_rng(0)
    if net == "loc":
        H, W = args.loc_size
        x = rng.random((B, 3, H, W), dtype=np.float32)
        y = rng.random((B, 4), dtype=np.float32)
    else:
        H, W = args.cae_size
        x = rng.random((B, 1, H, W), dtype=np.float32)
        y = (rng.random((B, 1, H, W)) < 0.3).astype(np.float32)
    return x, y


# ----------------------------------------------------------------------------- minisnn side


def build_minisnn(args, net: str):
    """The apps' own networks (:func:`minisnn.apps.loc.build_locnet`,
    :func:`minisnn.apps.seg.build_cae`) at the benchmark's sizes, so that the benchmark
    measures exactly what ``minisnn-train`` trains."""
    if net == "loc":
        from minisnn.apps import loc

        cfg = loc.make_config("default", size=tuple(args.loc_size), widths=tuple(args.loc_widths),
                              dense=tuple(args.loc_dense), sigma=SIGMA, amplitude=AMPLITUDE)
        return loc.build_locnet(cfg, seed=0)
    from minisnn.apps import seg

    cfg = seg.make_config("default", widths=tuple(args.cae_widths), scale=CAE_SCALE)
    return seg.build_cae(cfg, seed=0)


def child_minisnn(args, net_name: str, B: int) -> dict:
    import numpy as np

    from minisnn.kernels import set_num_threads, warmup

    set_num_threads(args.threads)  # BLAS threads: from the environment (pin_thread_env)
    warmup()
    import minisnn as ms

    ms.reuse_freed_memory()  # as minisnn-train does
    from minisnn import functional as F
    from minisnn.autodiff import Tensor, no_grad

    C.limit_memory(args.mem_limit_gb)
    net = build_minisnn(args, net_name)
    x, y = make_batch(args, net_name, B)
    wfile = os.path.join(args.wdir, f"{net_name}.npz")
    if not os.path.exists(wfile):  # the torch children start from these weights
        arrays = {}
        for k, layer in enumerate(m for m in net if hasattr(m, "w")):
            arrays[f"w{k}"], arrays[f"b{k}"] = layer.w.data, layer.b.data
        with no_grad():
            arrays["probe_out"] = net(Tensor(x[:2])).data
        arrays["probe_x"] = x[:2]
        tmp = wfile + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, wfile)
        del arrays

    if net_name == "loc":
        def loss_fn(out):
            return F.mse_loss(out, y)
    else:
        def loss_fn(out):
            return F.bce_with_logits_loss(out, y) * 0.5 + F.dice_loss(out.sigmoid(), y) * 0.5

    opt = ms.Adam(net.parameters(), lr=1e-3)
    info = {}

    def step():
        opt.zero_grad()
        loss = loss_fn(net(Tensor(x)))
        loss.backward()
        opt.step()
        info["loss"] = float(loss.item())

    return _time_steps(args, "minisnn", net_name, B, step, info)


# ----------------------------------------------------------------------------- torch side


def build_torch(torch, args, net: str):
    nn = torch.nn

    softplus = torch.nn.functional.softplus
    log_sigma = math.log(SIGMA)

    class SoftLIF(nn.Module):
        """Soft-LIF rate: x = (J - 1) / sigma, z = sigma softplus(x), r = amp / (tau_ref + tau_rc log(1 + 1/z)).

        Written stably in float32: log(1 + 1/z) = softplus(-log z) with log z = log sigma + log
        softplus(x), and log softplus(x) = x far below threshold (where softplus underflows)."""

        def forward(self, J):
            x = (J - 1.0) * (1.0 / SIGMA)
            log_sp = torch.where(x < -20.0, x, torch.log(softplus(x).clamp_min(1e-30)))
            return AMPLITUDE / (TAU_REF + TAU_RC * softplus(-(log_sigma + log_sp)))

    if net == "loc":
        layers, cin = [], 3
        H, W = args.loc_size
        for width in args.loc_widths:
            layers += [nn.Conv2d(cin, width, 3, padding=1), SoftLIF(),
                       nn.Conv2d(width, width, 3, stride=2, padding=1), SoftLIF()]
            cin, H, W = width, (H - 1) // 2 + 1, (W - 1) // 2 + 1
        layers.append(nn.Flatten())
        fan_in = cin * H * W
        for width in args.loc_dense:
            layers += [nn.Linear(fan_in, width), SoftLIF()]
            fan_in = width
        layers.append(nn.Linear(fan_in, 4))
        return nn.Sequential(*layers)
    a, b, c = args.cae_widths

    def conv(ci, co):
        return nn.Conv2d(ci, co, 3, padding=1)

    R = nn.ReLU
    return nn.Sequential(
        conv(1, a), R(), conv(a, a), R(), nn.AvgPool2d(2),
        conv(a, b), R(), conv(b, b), R(), nn.AvgPool2d(2),
        conv(b, c), R(), conv(c, c), R(),
        nn.ConvTranspose2d(c, b, 2, stride=2), R(), conv(b, b), R(),
        nn.ConvTranspose2d(b, a, 2, stride=2), R(),
        nn.Conv2d(a, 1, 3, padding=1),
    )


def child_torch(args, net_name: str, B: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    C.limit_memory(args.mem_limit_gb)
    nn = torch.nn
    net = build_torch(torch, args, net_name)
    x_np, y_np = make_batch(args, net_name, B)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    wfile = os.path.join(args.wdir, f"{net_name}.npz")
    if os.path.exists(wfile):
        z = np.load(wfile)
        mods = [m for m in net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        with torch.no_grad():
            for k, m in enumerate(mods):
                m.weight.copy_(torch.from_numpy(z[f"w{k}"]))
                m.bias.copy_(torch.from_numpy(z[f"b{k}"]))
            ref = z["probe_out"]
            out = net(torch.from_numpy(z["probe_x"])).numpy()
        info["check_rel_err"] = float(np.max(np.abs(out - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
        del z, ref, out
    else:
        info["check_rel_err"] = None  # torch's own initialisation

    F = torch.nn.functional
    if net_name == "loc":
        def loss_fn(out):
            return F.mse_loss(out, y)
    else:
        def loss_fn(out):
            p = torch.sigmoid(out)
            inter = (p * y).flatten(1).sum(1)
            denom = p.flatten(1).sum(1) + y.flatten(1).sum(1) + 1.0
            dice = (1.0 - (2.0 * inter + 1.0) / denom).mean()
            return 0.5 * F.binary_cross_entropy_with_logits(out, y) + 0.5 * dice

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = loss_fn(net(x))
        loss.backward()
        opt.step()
        info["loss"] = float(loss.item())

    return _time_steps(args, "torch", net_name, B, step, info)


# ----------------------------------------------------------------------------- shared child code


def _time_steps(args, engine, net, B, step, info) -> dict:
    """The net's warm-up and timed steps (:func:`steps_for`, :func:`_common.time_steps`)."""
    r = C.time_steps(step, *steps_for(args, net))
    return {"engine": engine, "net": net, "batch": B, "step_s": r["median_s"], "step_s_min": r["min_s"],
            "images_per_s": B / r["median_s"], "loss_finite": math.isfinite(info.get("loss", float("nan"))),
            **r, **info}


# ----------------------------------------------------------------------------- parent


def run_child(args, engine, net, B, wdir):
    """One case in its own process (:func:`_common.spawn`): the job is this run's options."""
    warmup, repeats = steps_for(args, net)
    job = {**vars(args), "wdir": wdir, "worker": None, "repeats": repeats, "warmup": warmup}
    r = C.spawn(__file__, f"{engine}:{net}:{B}", job, C.minisnn_env() if engine == "minisnn" else C.peer_env())
    if "error" in r:
        r.update(engine=engine, net=net, batch=B)
    return r


def child(role: str, job: dict) -> dict:
    """A child process's case: ``role`` is ``engine:net:batch``, ``job`` the parent's options."""
    engine, net, B = role.split(":")
    return (child_minisnn if engine == "minisnn" else child_torch)(argparse.Namespace(**job), net, int(B))


def summarize(rows, nets_batches):
    """Per net and batch: minisnn/torch images/s and peak RSS, each the median of the rounds'
    ratios (a round's two children ran back to back), with the rounds' own ratios."""
    out = {}
    for net, batches in nets_batches:
        per = {}
        for B in batches:
            def case(engine):
                return {r["round"]: r for r in rows if r["engine"] == engine and r["net"] == net
                        and r["batch"] == B and "error" not in r}

            m, t = case("minisnn"), case("torch")
            both = sorted(set(m) & set(t))
            speed = [m[i]["images_per_s"] / t[i]["images_per_s"] for i in both]
            rss = [m[i]["peak_rss_mib"] / t[i]["peak_rss_mib"] for i in both]
            per[str(B)] = {
                "speed_ratio": statistics.median(speed) if speed else None,
                "rss_ratio": statistics.median(rss) if rss else None,
                "speed_ratios": speed,
                "minisnn_images_per_s": statistics.median(r["images_per_s"] for r in m.values()) if m else None,
                "torch_images_per_s": statistics.median(r["images_per_s"] for r in t.values()) if t else None,
            }
        out[net] = per
    return out


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    if args.worker:
        return C.worker_main(args.worker, child)
    t_start = time.perf_counter()
    torch_note = None
    if args.no_torch:
        torch_note = "skipped (--no-torch)"
    else:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            torch_note = "not installed"
    print(f"ANN training step (forward + loss + backward + Adam), float32, {args.threads} threads, each case in "
          f"its own process; load average {C.fmt_loadavg()}", flush=True)
    nets_batches = [(n, args.loc_batch if n == "loc" else args.cae_batch) for n in args.nets]
    rows = []
    wdir = tempfile.mkdtemp(prefix="bench_train_")
    try:
        for net, batches in nets_batches:
            R = rounds_for(args, net)
            for B in batches:
                for i in range(1, R + 1):
                    for engine in ENGINES:
                        if engine == "torch" and torch_note:
                            if i == 1:
                                rows.append({"engine": "torch", "net": net, "batch": B, "round": i,
                                             "error": torch_note})
                            continue
                        print(f"  .. {engine} {net} batch {B}" + (f", round {i} of {R}" if R > 1 else ""),
                              file=sys.stderr, flush=True)
                        rows.append({**run_child(args, engine, net, B, wdir), "round": i})
    finally:
        shutil.rmtree(wdir, ignore_errors=True)

    headers = ["net", "engine", "batch", "round", "step s", "images/s", "CPU/wall", "peak RSS MiB", "check", "note"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["net"], "pytorch" if r["engine"] == "torch" else r["engine"], r["batch"], r["round"],
                          None, None, None, None, None, r["error"]])
            continue
        chk = r.get("check_rel_err")
        note = "" if r.get("loss_finite", True) else "loss not finite"
        table.append([r["net"], "pytorch" if r["engine"] == "torch" else r["engine"], r["batch"], r["round"],
                      r["step_s"], r["images_per_s"], r["cpu_per_wall"], r["peak_rss_mib"], chk, note])
    for net, _ in nets_batches:
        print(f"{net}: {describe(args, net)}")
    counts = "; ".join(f"{net} {steps_for(args, net)[1]} after {steps_for(args, net)[0]} warm-up"
                       for net in dict(nets_batches))
    print(f"step s = median of the timed steps ({counts}); peak RSS = VmHWM of the steps "
          f"(reset before the first); check = max relative difference of a 2-image forward pass vs minisnn")
    C.print_table(headers, table, "llrrrrrrrl")
    summary = summarize(rows, nets_batches)
    targets = {}
    for net, per in summary.items():
        for B, s in per.items():
            sp, rr, each = s["speed_ratio"], s["rss_ratio"], s["speed_ratios"]
            rounds = f"median of {len(each)} rounds: {', '.join(f'{x:.2f}x' for x in each)}; " if len(each) > 1 else ""
            print(f"{net} batch {B}: minisnn/pytorch images/s "
                  + (f"{sp:.2f}x ({rounds}target >= {SPEED_TARGET:g}x: {C.status(sp >= SPEED_TARGET)}), "
                     f"peak RSS {rr:.2f}x" if sp is not None else f"- (pytorch {torch_note or 'failed'})"))
        first = per[str(nets_batches[[n for n, _ in nets_batches].index(net)][1][0])]
        sp = first["speed_ratio"]
        targets[net] = {"value": sp, "target": SPEED_TARGET, "met": None if sp is None else sp >= SPEED_TARGET}
    elapsed = time.perf_counter() - t_start
    info = C.machine_info()  # imports numpy/numba/torch: only now, all children are done
    info["numba_threading_layer"] = next((r["numba_threading_layer"] for r in rows
                                          if r.get("numba_threading_layer")), None)
    payload = {"benchmark": "bench_train", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:],
               "options": {k: v for k, v in vars(args).items() if k not in ("child", "wdir")},
               "nets": {n: describe(args, n) for n in args.nets}, "peer_status": torch_note or "ok",
               "rows": rows, "summary": summary, "targets": targets, "machine": info, "elapsed_s": elapsed}
    path = C.write_json(args.json, payload)
    print(f"total {elapsed:.0f} s; wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
