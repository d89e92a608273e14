"""The benchmark suite runs: ``benchmarks/run_all.py --quick`` end to end, and its target logic.

* one subprocess run of ``run_all.py --quick --only train,hybrid --no-torch --threads 1`` into
  ``tmp_path`` (bench_train.py and bench_hybrid.py at their smallest, minisnn only: ~20 s on two
  cores) must exit 0 and write ``results.json`` (machine description, both sections' own JSON,
  the table, the issue's targets) and ``table.txt``;
* the met / MISSED / "not measured" logic of the targets on hand-made section results (no
  subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="the benchmarks time the compiled engine (plain-Python kernels are too slow)",
)


@pytest.fixture(scope="module")
def run_all():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all as mod
    finally:
        sys.path.remove(str(BENCH))
    return mod


def test_quick_suite_writes_table_and_json(tmp_path):
    cmd = [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "train,hybrid", "--no-torch",
           "--threads", "1", "--out", str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "target (issues 7 and 20)" in p.stdout

    res = json.loads((tmp_path / "results.json").read_text())
    assert res["mode"] == "quick" and res["peers"] == "skipped (--no-torch)"
    assert res["machine"]["cpu_model"] and res["machine"]["numpy"]
    for name in ("train", "hybrid"):
        sec = res["sections"][name]
        assert sec["rc"] == 0 and "data" in sec, sec.get("error")
        assert (tmp_path / f"{name}.json").exists() and (tmp_path / f"{name}.log").exists()
    # minisnn measured something on every row it owns; the peer columns say why they are empty
    train = [r for r in res["table"] if r["section"] == "train"]
    assert {r["metric"] for r in train} == {"images/s", "CPU/wall", "peak RSS MiB"}
    assert all(isinstance(r["minisnn"], float) and r["minisnn"] > 0 for r in train)
    assert all(r["peer_value"] == "skipped (--no-torch)" for r in train)
    hybrid = [r for r in res["table"] if r["section"] == "hybrid"]
    assert any(r["case"].startswith("hybrid step") for r in hybrid)
    assert all(isinstance(r["minisnn"], float) and r["minisnn"] > 0 for r in hybrid)
    # every target of the issue is listed; the ones needing a peer are "not measured" without it
    tg = {t["target"]: t for t in res["targets"]}
    assert len(tg) == 9
    protocol = [t for name, t in tg.items() if "lean snnTorch" in name]
    assert len(protocol) == 2 and all(t["status"] == "not run" for t in protocol)
    flat = next(t for name, t in tg.items() if name.startswith("hybrid step peak RSS flat"))
    assert flat["met"] in (True, False)
    speed = next(t for name, t in tg.items() if name.startswith("hybrid step >="))
    assert speed["met"] is None and "skipped" in speed["status"]
    assert next(t for name, t in tg.items() if name.startswith("conv fwd+bwd"))["status"] == "not run"
    table = (tmp_path / "table.txt").read_text()
    assert "minisnn/peer" in table and "hybrid step" in table and "LocNet batch 1" in table


def _hybrid_rows(times):
    """bench_hybrid rows: {(kind, T): (time_s or error, rss)} at batch 4."""
    rows = []
    for (kind, T), (t, rss) in times.items():
        r = {"kind": kind, "T": T, "batch": 4}
        if isinstance(t, str):
            r.update(time_s=None, peak_rss_mib=None, error=t)
        else:
            r.update(time_s=t, peak_rss_mib=rss)
        rows.append(r)
    return rows


def test_targets_met_missed_and_not_measured(run_all):
    ops = {"rows": [
        {"net": "LocNet", "layer": "conv3", "targeted": True, "fwd_bwd_over_gemm": 0.61},
        {"net": "LocNet", "layer": "conv5", "targeted": True, "fwd_bwd_over_gemm": 0.42},
        {"net": "LocNet", "layer": "conv1", "targeted": False, "fwd_bwd_over_gemm": 0.05},
    ]}
    train = {"summary": {"loc": {"32": {"speed_ratio": 1.2, "rss_ratio": 0.8}},
                         "cae": {"64": {"speed_ratio": 0.5, "rss_ratio": 0.7}}}, "peer_status": "ok"}
    snn = {"batch": 8, "results": [
        {"engine": e, "steps": T, "images_per_s": v, "memory": {"ru_maxrss_mb": m}}
        for e, T, v, m in [("minisnn", 50, 2.0, 1000), ("snntorch", 50, 0.1, 1400),
                           ("minisnn", 200, 0.5, 1050), ("snntorch", 200, 0.025, 1400)]]}
    hybrid = {"options": {"batch": [4]}, "rows": _hybrid_rows({
        ("mean-rate", 50): (1.0, 500.0), ("snntorch-bptt", 50): (30.0, 4000.0), ("per-step", 50): (10.0, 3000.0),
        ("mean-rate", 100): (2.0, 520.0), ("snntorch-bptt", 100): ("OOM (> 12 GB)", None),
        ("per-step", 100): ("skipped (T > 50)", None)})}
    def protocol(mini, peer):
        return {"batch": 4, "constants": {"layers": [{"in_shape": [3, 100, 150]}]}, "results": [
            {"engine": "minisnn", "steps": 50, "images_per_s": mini, "mean_rate_hz": 150.0},
            {"engine": "snntorch", "steps": 50, "images_per_s": peer, "mean_rate_hz": 190.0}]}

    results = {name: {"data": d} for name, d in (("ops", ops), ("train", train), ("snn", snn), ("hybrid", hybrid),
                                                   ("protocol_150", protocol(2.0, 1.0)),
                                                   ("protocol_40", protocol(6.0, 1.0)))}
    tg = run_all.targets(results, None)
    status = [t["status"] for t in tg]
    met = [t["met"] for t in tg]
    # conv: one of the two targeted layers misses
    assert met[0] is False and "1/2" in tg[0]["measured"] and "conv5" in tg[0]["measured"]
    # training: LocNet met, CAE missed
    assert met[1:3] == [True, False]
    # snn: no T = 100 -> the nearest measured T (50): 20x -> met, flagged as not at T = 100
    assert met[3] is True and "T = 50" in tg[3]["measured"] and "not 100" in status[3]
    assert met[4] is True  # 1000 -> 1050 MiB: +5 %
    # issue 20's protocol: 2x at ~150 Hz misses 3x, 6x at ~40 Hz meets 5x
    assert met[5:7] == [False, True] and "3x100x150 batch 4 T = 50, ~150 Hz" in tg[5]["target"]
    assert tg[5]["measured"].startswith("2.00x") and tg[6]["measured"].startswith("6.00x")
    # hybrid: the peer ran out of memory at T = 100 -> not measured, with the reason
    assert met[7] is None and "OOM" in status[7]
    assert met[8] is True  # 500 -> 520 MiB: +4 %

    # nothing run: every target says so
    assert all(t["status"] == "not run" for t in run_all.targets({}, None))


def test_hybrid_rows_put_the_unrolled_step_beside_the_peer(run_all):
    rows = _hybrid_rows({("mean-rate", 50): (1.0, 500.0), ("per-step", 50): (10.0, 3000.0),
                         ("snntorch-bptt", 50): (30.0, 4000.0), ("mean-rate", 100): (2.0, 520.0),
                         ("per-step", 100): ("skipped (T > 50)", None), ("snntorch-bptt", 100): (60.0, 8000.0)})
    out = run_all.hybrid_rows({"data": {"options": {"height": 100, "width": 150}, "rows": rows}}, None)
    unrolled = [i for i, r in enumerate(out) if r["case"].startswith("unrolled hybrid step")]
    assert [out[i]["case"] for i in unrolled] == ["unrolled hybrid step 3x100x150 batch 4 T=50"]
    speed, rss = out[unrolled[0]], out[unrolled[0] + 1]
    assert speed["minisnn"] == pytest.approx(0.4) and speed["ratio"] == pytest.approx(3.0)
    assert speed["target"] == "" and speed["peer"] == "snnTorch BPTT"
    assert rss["metric"] == "peak RSS MiB" and rss["ratio"] == pytest.approx(0.75)
    # the mean-rate step keeps its target row at T = 100
    assert any(r["case"] == "hybrid step 3x100x150 batch 4 T=100" and r["target"] == ">= 6" for r in out)


def test_rows_with_a_speed_target_say_how_busy_each_engine_kept_the_cores(run_all):
    """The training rows and the hybrid row at T = 100 are followed by each engine's CPU time
    per wall time (the median over the training rounds); other T get none."""
    rows = _hybrid_rows({("mean-rate", 50): (1.0, 500.0), ("snntorch-bptt", 50): (30.0, 4000.0),
                         ("mean-rate", 100): (2.0, 520.0), ("snntorch-bptt", 100): (60.0, 8000.0)})
    for r in rows:
        r["cpu_per_wall"] = {"mean-rate": 1.6, "snntorch-bptt": 1.99}[r["kind"]] + r["T"] / 1000
    out = run_all.hybrid_rows({"data": {"options": {"height": 100, "width": 150}, "rows": rows}}, None)
    busy = [(out[i - 1]["case"], r["minisnn"], r["peer_value"]) for i, r in enumerate(out) if r["metric"] == "CPU/wall"]
    assert busy == [("hybrid step 3x100x150 batch 4 T=100", pytest.approx(1.7), pytest.approx(2.09))]

    train = {"summary": {"cae": {"64": {"speed_ratio": 1.2, "rss_ratio": 0.9}}}, "peer_status": "ok", "rows": [
        {"engine": e, "net": "cae", "batch": 64, "images_per_s": v, "cpu_per_wall": c, "round": k}
        for k, (e, v, c) in enumerate([("minisnn", 600.0, 1.7), ("torch", 500.0, 1.9), ("minisnn", 610.0, 1.5),
                                       ("torch", 505.0, 2.0), ("minisnn", 590.0, 1.8), ("torch", 495.0, 1.95)])]}
    out = run_all.train_rows({"data": train})
    assert [r["metric"] for r in out] == ["images/s", "CPU/wall", "peak RSS MiB"]
    assert (out[1]["minisnn"], out[1]["peer"], out[1]["peer_value"]) == (1.7, "PyTorch", 1.95)


def test_scaling_exponents(run_all):
    assert run_all._slope([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0]) == pytest.approx(1.0)
    assert run_all._slope([25, 50, 100], [500.0, 500.0, 500.0]) == pytest.approx(0.0)
    assert run_all._slope([10], [1.0]) is None


def test_scaling_rows_and_plots(run_all, tmp_path):
    """The full mode's scaling data (four kinds vs batch, CAE training vs batch) gives exponent
    rows and log-log PNGs; a failed peer case leaves a gap, not an error."""
    from PIL import Image

    rows = []
    for kind, c in (("mean-rate", 0.1), ("snntorch-bptt", 0.3), ("snn", 0.05), ("snntorch", 0.08)):
        for B in (1, 2, 4, 8):
            rows.append({"kind": kind, "T": 25, "batch": B, "time_s": c * B, "peak_rss_mib": 200.0 + B})
    rows[-1] = {"kind": "snntorch", "T": 25, "batch": 8, "time_s": None, "peak_rss_mib": None, "error": "OOM"}
    train = [{"engine": e, "net": "cae", "batch": B, "step_s": c * B, "peak_rss_mib": 150.0 + B}
             for e, c in (("minisnn", 0.02), ("torch", 0.01)) for B in (16, 32, 64)]
    results = {
        "scaling_batch": {"data": {"options": {"steps": [25], "batch": [1, 2, 4, 8], "height": 100, "width": 150},
                                   "rows": rows}},
        "scaling_train": {"data": {"rows": train, "peer_status": "ok"}},
    }
    table = run_all.scaling_rows(results, None)
    assert [r["metric"] for r in table] == ["time exponent", "peak RSS exponent"] * 3
    assert table[0]["minisnn"] == pytest.approx(1.0) and table[0]["peer_value"] == pytest.approx(1.0)
    assert table[4]["minisnn"] == pytest.approx(1.0) and table[4]["peer"] == "PyTorch"
    written = run_all.draw_plots(results, tmp_path)
    names = sorted(Path(p).name for p in written)
    assert names == ["scaling_rss_vs_batch.png", "scaling_time_vs_batch.png",
                     "scaling_train_rss_vs_batch.png", "scaling_train_time_vs_batch.png"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size == (720, 460)


def test_thread_wait_settings_go_to_minisnn_children_only(monkeypatch):
    """The benchmarks hand minisnn's children the thread-wait defaults ``import minisnn`` sets
    (its copy must equal the package's) and give the peers the user's environment back."""
    import minisnn

    sys.path.insert(0, str(BENCH))
    try:
        import _common as C
    finally:
        sys.path.remove(str(BENCH))
    assert C.MINISNN_WAIT_DEFAULTS == minisnn.THREAD_WAIT_DEFAULTS
    monkeypatch.setattr(C, "_USER_WAIT_ENV", {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": None})
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    mine, peer = C.minisnn_env(), C.peer_env()
    assert mine["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice wins
    assert mine["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert peer["OMP_WAIT_POLICY"] == "ACTIVE" and "OPENBLAS_THREAD_TIMEOUT" not in peer


def test_bench_mpi_quick_measures_every_configuration(tmp_path):
    """bench_mpi.py at the tiny preset's CAE: a training step at 1 x 1, 1 x 2 and 2 x 1 (mpirun);
    the 2-process row has the allreduce's time and buffer (or says why it could not run, where
    the [mpi] extra is missing and MINISNN_MPI_TESTS is not set)."""
    out = tmp_path / "mpi.json"
    cmd = [sys.executable, str(BENCH / "bench_mpi.py"), "--quick", "--work", "train", "--nets", "cae", "--repeats",
           "1", "--warmup", "0", "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = {r["config"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"1x1", "1x2", "2x1"}
    for config in ("1x1", "1x2"):
        assert rows[config]["images_per_s"] > 0 and rows[config]["images"] == 32, rows[config]
    two = rows["2x1"]
    if "error" in two and os.environ.get("MINISNN_MPI_TESTS") != "1":
        assert "mpi" in two["error"]
        return
    assert "error" not in two, two.get("error")
    assert two["processes"] == 2 and two["allreduce_s_per_step"] > 0 and two["allreduce_alone_s"] > 0
    assert two["buffer_bytes"] == two["param_bytes"] + 4 * (20 + 3)  # 20 tensors' flags + 3 loss terms
    assert 0 < two["efficiency"] < 2
    assert "allreduce ms/step" in p.stdout


def test_fastest_child_of_the_rounds():
    """``bench_snn.py --rounds``: an engine's result is its fastest child, with every child's
    best call and every call kept, the largest peak RSS, and an error only if all failed."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_snn
    finally:
        sys.path.remove(str(BENCH))
    children = [{"wall_s": 2.0, "wall_s_all": [2.5, 2.0], "memory": {"ru_maxrss_mb": 900.0}, "round": 1},
                {"error": "killed"},
                {"wall_s": 1.5, "wall_s_all": [1.5, 1.7], "memory": {"ru_maxrss_mb": 800.0}, "round": 3}]
    best = bench_snn.fastest_child(children)
    assert best["round"] == 3 and best["wall_s"] == 1.5
    assert best["round_wall_s"] == [2.0, None, 1.5] and best["wall_s_all"] == [2.5, 2.0, 1.5, 1.7]
    assert best["memory"] == {"ru_maxrss_mb": 900.0}
    assert "round_wall_s" not in children[2]  # the children's own dicts are left as they were
    assert bench_snn.fastest_child([{"error": "a"}, {"error": "b"}]) == {"error": "a"}


def test_bench_train_takes_the_median_of_its_rounds():
    """bench_train.py's ratio of a case run in rounds: each round's minisnn / PyTorch images/s
    (its two children ran back to back), then the median of those, not of the pooled children;
    a round whose PyTorch child failed gives no ratio."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_train
    finally:
        sys.path.remove(str(BENCH))

    def case(engine, rnd, ips, rss=100.0):
        return {"engine": engine, "net": "cae", "batch": 64, "round": rnd, "images_per_s": ips, "peak_rss_mib": rss}

    rows = [case("minisnn", 1, 600.0), case("torch", 1, 500.0),   # 1.2
            case("minisnn", 2, 400.0), case("torch", 2, 500.0),   # 0.8
            case("minisnn", 3, 700.0), case("torch", 3, 350.0),   # 2.0
            case("minisnn", 4, 900.0), {"engine": "torch", "net": "cae", "batch": 64, "round": 4, "error": "failed"}]
    s = bench_train.summarize(rows, [("cae", [64])])["cae"]["64"]
    assert s["speed_ratios"] == pytest.approx([1.2, 0.8, 2.0])
    assert s["speed_ratio"] == pytest.approx(1.2)  # pooled medians would give 650 / 500 = 1.3
    assert s["minisnn_images_per_s"] == pytest.approx(650.0) and s["torch_images_per_s"] == pytest.approx(500.0)
    alone = bench_train.summarize(rows[:1], [("cae", [64])])["cae"]["64"]
    assert alone["speed_ratio"] is None and alone["speed_ratios"] == []
