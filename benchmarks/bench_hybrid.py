#!/usr/bin/env python
"""One hybrid fine-tuning step on a LocNet-shaped net: time and peak RSS vs T, and vs snnTorch.

For each batch in --batch and each T in --steps, every kind in --kinds runs in a **fresh child
process**.  Its peak RSS is ``VmHWM`` reset just before the first (warm-up) step: the memory the
steps need, with everything resident at the time (weights, optimizer state, data), but not the
transients of building and converting the net (the whole process's ``ru_maxrss`` is kept in the
JSON).  Kinds:

* ``ann`` - one ANN training step (rate neurons, same net, same batch): the memory reference;
* ``mean-rate`` - minisnn's hybrid step, the mean-rate method (simulate, replay, backward, Adam); memory
  of an ANN step whatever T;
* ``per-step`` - minisnn's hybrid step unrolled over T (memory grows with T; skipped above
  --per-step-max-T);
* ``snntorch-bptt`` - the peer: snnTorch surrogate-gradient BPTT on the same net (same weights,
  converted to snnTorch's units), ``snn.Synaptic`` neurons (the 5 ms synapse + LIF membrane),
  the default ATan surrogate, the usual time-major loop, readout = mean output over the second
  half of the presentation, MSE, ``backward()``, Adam;
* ``snn`` / ``snntorch`` - inference only (no graph): minisnn's ``simulate`` and the snnTorch
  loop under ``no_grad`` (for the scaling plots of ``run_all.py``).

Children above --mem-limit-gb of address space fail and are reported as "OOM".  Targets:
mean-rate peak RSS <= 1.3x the ANN step's at every T (issue 4); mean-rate step >= 20x faster than
snnTorch's BPTT step at T = 100 and mean-rate peak RSS flat in T (issue 7).

    python benchmarks/bench_hybrid.py [--batch 32] [--steps 25 50 100 200] [--threads 2]
    python benchmarks/bench_hybrid.py --kinds mean-rate snntorch-bptt --batch 8 --steps 25 50 100
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

RSS_TARGET = 1.3  # mean-rate peak RSS <= this x the ANN step's (issue 4)
SPEED_TARGET = 20.0  # snnTorch BPTT step time / mean-rate step time at T = 100 (issue 7)
SPEED_T = 100
FLAT_TARGET = 0.10  # mean-rate peak RSS at the largest T within 10% of the smallest T's
KINDS = ("ann", "mean-rate", "per-step", "snntorch-bptt", "snn", "snntorch")
TORCH_KINDS = ("snntorch-bptt", "snntorch")
DEFAULT_KINDS = ["ann", "mean-rate", "per-step", "snntorch-bptt"]
DT, TAU_RC, SYNAPSE, AMPLITUDE = 0.001, 0.02, 0.005, 0.01


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[32], help="batch size(s) (default 32)")
    p.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200], help="T values")
    p.add_argument("--kinds", nargs="+", default=DEFAULT_KINDS, choices=KINDS,
                   help=f"cases to run (default {' '.join(DEFAULT_KINDS)})")
    p.add_argument("--height", type=int, default=100)
    p.add_argument("--width", type=int, default=150)
    p.add_argument("--widths", type=int, nargs=3, default=[16, 32, 64], help="conv widths of the 3 stages")
    p.add_argument("--dense", type=int, nargs="+", default=[256, 128, 32], help="hidden dense widths")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="timed steps per child (after one warm-up step)")
    p.add_argument("--per-step-max-T", type=int, default=50)
    p.add_argument("--mem-limit-gb", type=float, default=16.0, help="address-space limit of each child")
    p.add_argument("--time-chunk", type=int, default=8, help="simulator time block (memory ~ block x batch)")
    p.add_argument("--no-torch", action="store_true", help="skip the snnTorch kinds")
    p.add_argument("--json", default="bench_hybrid.json",
                   help="JSON output; a bare file name goes to benchmarks/out/ (default bench_hybrid.json)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: a child's case
    p.add_argument("--wdir", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def net_description(a) -> str:
    return (f"LocNet-shaped, input 3x{a.height}x{a.width}, [conv3x3 -> stride-2 conv3x3] x 3 at widths "
            f"{'-'.join(map(str, a.widths))}, dense {'-'.join(map(str, a.dense))}-4, soft-LIF (spiking: LIF, "
            f"synapse {SYNAPSE} s), every bias 2.0")


BPTT_BYTES_PER_UNIT_STEP = 20  # snnTorch BPTT keeps ~5 float32 per neuron and time step (measured)


def neuron_units(a) -> int:
    """Spiking neurons per image of the net :func:`build` makes (no numpy needed)."""
    n, h, w = 0, a.height, a.width
    for c in a.widths:
        n += c * h * w
        h, w = (h + 1) // 2, (w + 1) // 2
        n += c * h * w
    return n + sum(a.dense)


def bptt_estimate_gb(a, B, T) -> float:
    """Peak memory of an snnTorch BPTT step: the graph of B x T image-steps, plus ~0.5 GB.

    Measured on the 3x100x150 net (527k neurons): 526 MiB at batch 1, T = 10 and 629 MiB at
    T = 20, i.e. ~10 MiB or ~20 bytes per neuron per image-step."""
    return BPTT_BYTES_PER_UNIT_STEP * neuron_units(a) * B * T / 2**30 + 0.5


def build(H, W, widths=(16, 32, 64), dense=(256, 128, 32), seed=0):
    """LocNet shape: [conv 3x3 -> stride-2 conv 3x3] x 3, dense layers, 4 outputs (soft-LIF hidden)."""
    import numpy as np

    import minisnn as ms
    from minisnn.layers import Neurons
    from minisnn.neurons import SoftLIFRate

    rng = np.random.default_rng(seed)
    layers, c_in, h, w = [], 3, H, W
    for c in widths:
        layers += [ms.Conv2d(c_in, c, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=AMPLITUDE)),
                   ms.Conv2d(c, c, 3, stride=2, padding=1, rng=rng),
                   Neurons(SoftLIFRate(sigma=0.005, amplitude=AMPLITUDE))]
        c_in, h, w = c, (h + 1) // 2, (w + 1) // 2
    layers.append(ms.Flatten())
    sizes = [c_in * h * w, *dense, 4]
    for i in range(len(sizes) - 1):
        layers.append(ms.Dense(sizes[i], sizes[i + 1], rng=rng))
        if i < len(sizes) - 2:
            layers.append(Neurons(SoftLIFRate(sigma=0.005, amplitude=AMPLITUDE)))
    net = ms.Sequential(*layers)
    for layer in net:
        if hasattr(layer, "b") and layer.b is not None:
            layer.b.data[:] = 2.0  # every layer fires
    return net


def batch_data(args, B):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (B, 3, args.height, args.width)).astype(np.float32)
    y = rng.uniform(0, 1, (B, 4)).astype(np.float32)
    return x, y


def child_weights(args) -> dict:
    """Save the net's weights (in layer order) for the snnTorch children."""
    import numpy as np

    net = build(args.height, args.width, args.widths, args.dense)
    arrays = {}
    k = 0
    for layer in net:
        if hasattr(layer, "w"):
            arrays[f"w{k}"], arrays[f"b{k}"] = layer.w.data, layer.b.data
            k += 1
    np.savez(os.path.join(args.wdir, "net.npz"), **arrays)
    return {"kind": "weights", "layers": k}


def child_minisnn(args, kind: str, T: int, B: int) -> dict:
    import minisnn as ms
    from minisnn.runtime import set_threads

    set_threads(args.threads)  # not C.set_threads: torch would count in the peak RSS
    from minisnn import functional as F
    from minisnn.autodiff import no_grad
    from minisnn.hybrid import convert, hybrid_loss
    from minisnn.kernels import warmup
    from minisnn.train import ann_loss

    ms.reuse_freed_memory()  # as minisnn-train does
    warmup()
    C.limit_memory(args.mem_limit_gb)
    net = build(args.height, args.width, args.widths, args.dense)
    x, y = batch_data(args, B)
    extra = {}
    if kind == "snn":
        model = convert(net, synapse=SYNAPSE, steps=T, time_chunk=args.time_chunk)

        def step():
            with no_grad():
                res = model.run(x)
            extra["mean_rate_hz"] = float(res.mean_rate)
    else:
        if kind == "ann":
            model = net

            def loss_fn():
                return ann_loss(net, x, y, F.mse_loss)[0]
        else:
            model = convert(net, synapse=SYNAPSE, steps=T, time_chunk=args.time_chunk)
            method = "mean" if kind == "mean-rate" else "per-step"

            def loss_fn():
                loss, info = hybrid_loss(model, x, y, F.mse_loss, method=method)
                if info.get("sim") is not None:
                    extra["mean_rate_hz"] = float(info["sim"].mean_rate)
                return loss
        opt = ms.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
            extra["loss"] = float(loss.item())
    return _time_steps(args, kind, T, B, step, extra)


def _time_steps(args, kind, T, B, step, extra) -> dict:
    """One warm-up step, then ``args.repeats`` timed ones (:func:`_common.time_steps`)."""
    r = C.time_steps(step, 1, args.repeats)
    return {"kind": kind, "T": T, "batch": B, "time_s": r["median_s"], **r, **extra}


def child_snntorch(args, kind: str, T: int, B: int) -> dict:
    """The peer on the same net: snnTorch ``Synaptic`` neurons, time-major loop; BPTT or no_grad."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import snntorch as snn

    C.limit_memory(args.mem_limit_gb)
    nn = torch.nn
    beta, alpha = math.exp(-DT / TAU_RC), math.exp(-DT / SYNAPSE)
    z = np.load(os.path.join(args.wdir, "net.npz"))
    n_lin = len(z.files) // 2
    mods = []
    for k in range(n_lin):
        w, b = z[f"w{k}"], z[f"b{k}"]
        # units: minisnn's LIF reads currents in threshold units and emits spikes of height
        # amplitude/dt; snnTorch's Synaptic adds (1-alpha)(1-beta)-scaled currents and emits 1s
        spiking = k < n_lin - 1
        s_in = 1.0 if k == 0 else AMPLITUDE / DT
        s_out = (1.0 - alpha) * (1.0 - beta) if spiking else 1.0
        w = torch.from_numpy((w * (s_in * s_out)).astype(np.float32))
        b = torch.from_numpy((b * s_out).astype(np.float32))
        if w.ndim == 4:
            stride = 1 if k % 2 == 0 else 2
            m = nn.Conv2d(w.shape[1], w.shape[0], 3, stride=stride, padding=1)
        else:
            m = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(b)
        mods.append(m)
    lifs = [snn.Synaptic(alpha=alpha, beta=beta) for _ in range(n_lin - 1)]
    model = nn.ModuleList(mods)
    x_np, y_np = batch_data(args, B)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    window = (T + 1) // 2
    n_conv = sum(1 for m in mods if isinstance(m, nn.Conv2d))
    extra = {"snntorch": getattr(snn, "__version__", None), "torch": torch.__version__,
             "torch_threads": torch.get_num_threads()}

    def forward():
        state = [lif.init_synaptic() for lif in lifs]
        acc, spikes = 0.0, 0.0
        for t in range(T):
            h = x
            for k, m in enumerate(mods):
                if k == n_conv:
                    h = h.flatten(1)
                cur = m(h)
                if k < n_lin - 1:
                    syn, mem = state[k]
                    h, syn, mem = lifs[k](cur, syn, mem)
                    state[k] = (syn, mem)
                    spikes = spikes + h.detach().sum()
                else:
                    h = cur
            if t >= T - window:
                acc = acc + h
        return acc / window, spikes

    if kind == "snntorch":
        def step():
            with torch.no_grad():
                _, spikes = forward()
            extra["spikes_per_step"] = float(spikes) / T
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            out, spikes = forward()
            loss = torch.nn.functional.mse_loss(out, y)
            loss.backward()
            opt.step()
            extra["loss"] = float(loss.item())
            extra["spikes_per_step"] = float(spikes) / T
    return _time_steps(args, kind, T, B, step, extra)


def run_child(args, kind, T, B, wdir):
    """One case in its own process (:func:`_common.spawn`): the job is this run's options."""
    job = {**vars(args), "wdir": wdir, "worker": None}
    r = C.spawn(__file__, f"{kind}:{T}:{B}", job, C.peer_env() if kind in TORCH_KINDS else C.minisnn_env())
    if "error" in r:
        if r["error"].endswith("OOM"):
            r["error"] = f"OOM (> {args.mem_limit_gb:g} GB)"
        r.update(kind=kind, T=T, batch=B, time_s=None, peak_rss_mib=None)
    return r


def child(role: str, job: dict) -> dict:
    """A child process's case: ``role`` is ``kind:T:batch``, ``job`` the parent's options."""
    args = argparse.Namespace(**job)
    kind, T, B = role.split(":")
    T, B = int(T), int(B)
    if kind == "weights":
        return child_weights(args)
    if kind in TORCH_KINDS:
        return child_snntorch(args, kind, T, B)
    return child_minisnn(args, kind, T, B)


def _find(rows, kind, T, B):
    return next((r for r in rows if r["kind"] == kind and r["T"] == T and r["batch"] == B
                 and r.get("time_s") is not None), None)


def evaluate_targets(rows, batches, steps) -> dict:
    """The targets per batch: RSS vs ANN, speed-up over snnTorch BPTT at T = 100, flat memory."""
    out = {}
    for B in batches:
        t = {}
        ann = _find(rows, "ann", 0, B)
        means = [r for r in rows if r["kind"] == "mean-rate" and r["batch"] == B and r.get("time_s") is not None]
        if ann and means:
            worst = max(r["peak_rss_mib"] / ann["peak_rss_mib"] for r in means)
            t["rss_vs_ann"] = {"value": worst, "target": RSS_TARGET, "met": worst <= RSS_TARGET}
        m100, s100 = _find(rows, "mean-rate", SPEED_T, B), _find(rows, "snntorch-bptt", SPEED_T, B)
        if m100 and s100:
            sp = s100["time_s"] / m100["time_s"]
            t["speedup_T100"] = {"value": sp, "target": SPEED_TARGET, "met": sp >= SPEED_TARGET}
        elif m100:
            s_row = next((r for r in rows if r["kind"] == "snntorch-bptt" and r["T"] == SPEED_T and r["batch"] == B),
                         None)
            if s_row is not None:  # the peer failed (e.g. out of memory): minisnn wins by default
                t["speedup_T100"] = {"value": None, "target": SPEED_TARGET, "met": None, "peer": s_row.get("error")}
        if len(means) >= 2:
            lo, hi = min(means, key=lambda r: r["T"]), max(means, key=lambda r: r["T"])
            flat = hi["peak_rss_mib"] / lo["peak_rss_mib"] - 1.0
            t["rss_flat_in_T"] = {"value": flat, "T": [lo["T"], hi["T"]], "target": FLAT_TARGET,
                                  "met": abs(flat) <= FLAT_TARGET}
        out[str(B)] = t
    return out


def main(argv=None):
    args = parse_args(argv)
    C.pin_thread_env(args.threads)
    if args.worker:
        return C.worker_main(args.worker, child)
    # this process only orchestrates and stays small (see _common.own_peak_rss_mb)
    t_start = time.perf_counter()
    kinds = list(dict.fromkeys(args.kinds))
    torch_note = None
    if any(k in TORCH_KINDS for k in kinds):
        import importlib.util

        if args.no_torch:
            torch_note = "skipped (--no-torch)"
        elif importlib.util.find_spec("torch") is None or importlib.util.find_spec("snntorch") is None:
            torch_note = "not installed"
    print(f"hybrid step, {net_description(args)}; batch {' '.join(map(str, args.batch))}, "
          f"{args.threads} threads, each case in its own process; load average {C.fmt_loadavg()}", flush=True)
    wdir = tempfile.mkdtemp(prefix="bench_hybrid_")
    rows = []
    try:
        if any(k in TORCH_KINDS for k in kinds) and torch_note is None:
            w = run_child(args, "weights", 0, 0, wdir)
            if w.get("error"):
                raise SystemExit(f"could not save the weights: {w['error']}")
        for B in args.batch:
            if "ann" in kinds:
                print(f"  .. ann batch {B}", file=sys.stderr, flush=True)
                rows.append(run_child(args, "ann", 0, B, wdir))
            for T in args.steps:
                for kind in kinds:
                    if kind == "ann":
                        continue
                    if kind in TORCH_KINDS and torch_note is not None:
                        rows.append({"kind": kind, "T": T, "batch": B, "time_s": None, "peak_rss_mib": None,
                                     "error": torch_note})
                        continue
                    if kind == "snntorch-bptt" and bptt_estimate_gb(args, B, T) > args.mem_limit_gb:
                        # do not let it allocate up to the limit on a shared machine before failing
                        est = bptt_estimate_gb(args, B, T)
                        rows.append({"kind": kind, "T": T, "batch": B, "time_s": None, "peak_rss_mib": None,
                                     "error": f"skipped (needs ~{est:.0f} GB > --mem-limit-gb {args.mem_limit_gb:g})"})
                        continue
                    if kind == "per-step" and T > args.per_step_max_T:
                        rows.append({"kind": kind, "T": T, "batch": B, "time_s": None, "peak_rss_mib": None,
                                     "error": f"skipped (T > {args.per_step_max_T})"})
                        continue
                    print(f"  .. {kind} batch {B} T {T}", file=sys.stderr, flush=True)
                    rows.append(run_child(args, kind, T, B, wdir))
    finally:
        shutil.rmtree(wdir, ignore_errors=True)

    headers = ["kind", "batch", "T", "time s", "images/s", "CPU/wall", "peak RSS MiB", "x ANN", "note"]
    table = []
    for r in rows:
        ann = _find(rows, "ann", 0, r["batch"])
        if r.get("time_s") is None:
            table.append([r["kind"], r["batch"], r["T"], None, None, None, None, None, r.get("error", "")])
            continue
        x_ann = r["peak_rss_mib"] / ann["peak_rss_mib"] if ann else None
        table.append([r["kind"], r["batch"], r["T"], r["time_s"], r["batch"] / r["time_s"], r.get("cpu_per_wall"),
                      r["peak_rss_mib"], x_ann, ""])
    print("time s = median step (forward + backward + Adam; inference kinds: one run) after a warm-up step; "
          "peak RSS = VmHWM of the case's own process from just before the first step")
    C.print_table(headers, table, "lrrrrrrrl")
    targets = evaluate_targets(rows, args.batch, args.steps)
    for B, t in targets.items():
        if "rss_vs_ann" in t:
            v = t["rss_vs_ann"]
            print(f"batch {B}: mean-rate peak RSS <= {RSS_TARGET}x ANN at every T: worst {v['value']:.2f}x  "
                  f"{C.status(v['met'])}")
        if "speedup_T100" in t:
            v = t["speedup_T100"]
            val = f"{v['value']:.2f}x" if v["value"] is not None else f"peer failed: {v.get('peer')}"
            print(f"batch {B}: mean-rate step >= {SPEED_TARGET:g}x faster than snnTorch BPTT at T={SPEED_T}: "
                  f"{val}  {C.status(v['met'])}")
        if "rss_flat_in_T" in t:
            v = t["rss_flat_in_T"]
            print(f"batch {B}: mean-rate peak RSS flat in T (T={v['T'][1]} within {FLAT_TARGET:.0%} of "
                  f"T={v['T'][0]}): {v['value']:+.1%}  {C.status(v['met'])}")
    elapsed = time.perf_counter() - t_start
    info = C.machine_info()  # imports numpy/numba/torch: only now, all children are done
    info["numba_threading_layer"] = next((r["numba_threading_layer"] for r in rows
                                          if r.get("numba_threading_layer")), None)
    payload = {"benchmark": "bench_hybrid", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:],
               "options": {k: v for k, v in vars(args).items() if k not in ("child", "wdir")},
               "net": net_description(args), "peer_status": torch_note or "ok",
               "targets_def": {"rss_vs_ann": RSS_TARGET, "speedup_T100": SPEED_TARGET, "rss_flat_in_T": FLAT_TARGET},
               "rows": rows, "targets": targets, "machine": info, "elapsed_s": elapsed}
    path = C.write_json(args.json, payload)
    print(f"total {elapsed:.0f} s; wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
