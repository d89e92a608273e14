"""Data-parallel training and evaluation over MPI (minisnn.parallel, issue 19).

The tests that need ``mpirun`` and mpi4py (the ``[mpi]`` extra) run ``tests/mpi_driver.py``
under ``mpirun -n 2`` and compare with one process.  They are skipped where the extra is not
installed, except when ``MINISNN_MPI_TESTS=1`` (``.ci/run`` sets it): then a missing mpirun or
mpi4py fails them.

Tolerances (measured on this machine; 2 ranks x 1 thread against 1 process x 2 threads):

* one training step (SGD): every gradient within 1e-4 of its tensor's largest entry (measured
  at most 1.8e-5); every parameter after the epoch within 5e-5 of its tensor's largest entry
  (measured at most 1.4e-5, after two SGD steps), after three Adam steps within 5e-4 (7.8e-5:
  Adam's first steps are ~lr x sign(g), which magnifies the summation order's differences in
  small gradients);
* the tiny presets: every number of the results table and of the training history within
  1e-3 (measured at most 2.5e-7: a spike that flipped would show as ~1e-2 on 5 test images).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minisnn import parallel

DRIVER = str(Path(__file__).with_name("mpi_driver.py"))
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
HAVE_MPI = MPIRUN is not None and importlib.util.find_spec("mpi4py") is not None
REQUIRED = os.environ.get("MINISNN_MPI_TESTS") == "1"
TIMEOUT = 300  # seconds: a hang fails the test instead of the CI job

mpi = pytest.mark.skipif(not HAVE_MPI and not REQUIRED,
                         reason="needs mpirun and mpi4py (pip install -e '.[mpi]'); MINISNN_MPI_TESTS=1 makes it fail")


def _env():
    env = dict(os.environ)
    for var in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        env.pop(var, None)
    return env


def mpirun(*args, n=2, prepend_rank=False):
    """``mpirun -n N python tests/mpi_driver.py ARGS``: the CompletedProcess (and its wall time)."""
    if not HAVE_MPI:
        pytest.fail("MINISNN_MPI_TESTS=1 but mpirun or mpi4py is missing: pip install -e '.[mpi]'")
    cmd = [MPIRUN, "-n", str(n)] + (["-prepend-rank"] if prepend_rank else []) + [sys.executable, DRIVER, *args]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    res.seconds = time.perf_counter() - t0
    return res


def alone(*args, env=None):
    """``python tests/mpi_driver.py ARGS`` as one process."""
    return subprocess.run([sys.executable, DRIVER, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=_env() | (env or {}))


def error_lines(text: str) -> list:
    return [line for line in text.splitlines() if "error:" in line]


# ----------------------------------------------------------------------------- no MPI needed


@pytest.mark.parametrize("n, size, unit", [(7, 2, 1), (9, 2, 1), (1, 2, 1), (48, 2, 16), (5, 2, 16), (0, 3, 1),
                                           (100, 7, 8), (33, 4, 16)])
def test_shares_cover_the_items_once_in_order(n, size, unit):
    spans = [parallel._span(n, size, r, unit) for r in range(size)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, in rank order
    lengths = [hi - lo for lo, hi in spans]
    blocks = -(-n // unit)
    if blocks >= size:  # whole blocks: every share but the last starts and ends on a block boundary
        assert all(lo % unit == 0 for lo, _ in spans)
        assert max(lengths) - min(lengths) <= unit
    else:
        assert max(lengths) - min(lengths) <= 1


def test_single_is_the_identity():
    one = parallel.Single()
    buf = np.arange(4.0)
    assert one.allreduce(buf) is buf and one.allgather("x") == ["x"] and one.bcast(3) == 3
    assert one.part(10, 4) == (0, 10) and (one.size, one.rank) == (1, 0)
    one.check_same("a", "anything")
    one.barrier()


PROBE = """
import json, sys
from minisnn.apps.cli import train_main
train_main(["loc", "--preset", "tiny", "--epochs", "0", "--hybrid-epochs", "0", "--out", sys.argv[1], "--quiet",
            "--no-cache"], prog_name="minisnn-train")
print(json.dumps({"mpi4py": "mpi4py" in sys.modules}))
"""


def test_a_single_process_never_imports_mpi4py(tmp_path):
    res = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=TIMEOUT, env=_env())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == {"mpi4py": False}


@pytest.mark.parametrize("rank", [0, 1])
def test_launched_without_the_extra_is_one_error_line(tmp_path, rank):
    """As the launcher starts it (PMI_SIZE=2), without mpi4py: rank 0 says what to install,
    the other ranks say nothing; every rank exits with status 2 and writes nothing."""
    res = alone("no-mpi4py", "--", "minisnn-train", "loc", "--preset", "tiny", "--out", str(tmp_path / "run"),
                env={"PMI_SIZE": "2", "PMI_RANK": str(rank)})
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    if rank == 0:
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: mpirun started 2 processes")
        assert "pip install 'minisnn[mpi]'" in res.stderr
    else:
        assert res.stderr == ""
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- under mpirun -n 2


@mpi
def test_mpirun_without_the_extra_is_one_error_line(tmp_path):
    res = mpirun("no-mpi4py", "--", "minisnn-train", "loc", "--preset", "tiny", "--out", str(tmp_path / "run"))
    assert res.returncode == 2
    assert len(error_lines(res.stderr)) == 1 and "pip install 'minisnn[mpi]'" in res.stderr, res.stderr
    assert not (tmp_path / "run").exists()


@mpi
def test_one_step_on_two_ranks_equals_one_process(tmp_path):
    """LocNet's ANN step (with its flips), both hybrid methods and the CAE's ANN step, on shares
    of 4 + 3 inputs and with a share left empty: the summed gradient and the parameters after
    the step are one process's, up to float32 summation order."""
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    res = alone("step", str(one))
    assert res.returncode == 0, res.stderr
    res = mpirun("step", str(two))
    assert res.returncode == 0, res.stderr
    a, b = np.load(one), np.load(two)
    assert sorted(a.files) == sorted(b.files)
    names = sorted({k.split("/")[0] for k in a.files})
    assert len(names) == 8
    for name in names:
        adam = name.endswith("adam")
        for key in sorted(k for k in a.files if k.startswith(f"{name}/after/")):
            i = key.rsplit("/", 1)[1]
            before, after1, after2 = a[f"{name}/before/{i}"], a[key], b[key]
            assert np.array_equal(before, b[f"{name}/before/{i}"])  # the same starting point
            assert not np.array_equal(before, after1)  # the step moved it
            tol = (5e-4 if adam else 5e-5) * np.abs(after1).max()
            assert np.abs(after1 - after2).max() <= tol, (key, np.abs(after1 - after2).max() / np.abs(after1).max())
            if name.endswith("7") or name == "cae":  # one step from the same weights: its gradient too
                g1, g2 = a[f"{name}/grad/{i}"], b[f"{name}/grad/{i}"]
                assert np.abs(g1 - g2).max() <= 1e-4 * np.abs(g1).max(), (name, i)


def _table_numbers(results: dict) -> dict:
    out = {}

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
            out[path] = float(x)

    walk({"table": results["table"], "history": {k: {m: h[m] for m in ("loss", "val")}
                                                  for k, h in results["history"].items()}}, "")
    return out


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny presets of both apps, as one process and on 2 ranks."""
    root = tmp_path_factory.mktemp("mpi")
    runs = {}
    for app in ("loc", "seg"):
        args = ["minisnn-train", app, "--preset", "tiny", "--quiet", "--no-cache"]
        one = alone("cli", "--", *args, "--out", str(root / f"{app}1"))
        two = mpirun("cli", "--", *args, "--out", str(root / f"{app}2")) if HAVE_MPI or REQUIRED else None
        runs[app] = (root / f"{app}1", one, root / f"{app}2", two)
    return runs


@mpi
@pytest.mark.parametrize("app", ["loc", "seg"])
def test_tiny_preset_on_two_ranks_matches_one_process(tiny_runs, app):
    out1, one, out2, two = tiny_runs[app]
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "2 MPI processes x 1 thread" in two.stderr  # each rank took its share of the 2 cores
    assert two.stdout.count("Table") == 1 and two.stderr.count("minisnn-train") == 1  # rank 0 alone prints
    a, b = (json.loads((o / "results.json").read_text()) for o in (out1, out2))
    assert b["mpi_processes"] == 2 and "mpi_processes" not in a
    na, nb = _table_numbers(a), _table_numbers(b)
    assert na.keys() == nb.keys() and len(na) > 30
    worst = max(na, key=lambda k: abs(na[k] - nb[k]))
    assert abs(na[worst] - nb[worst]) <= 1e-3, (worst, na[worst], nb[worst])
    files1 = sorted(str(p.relative_to(out1)) for p in out1.rglob("*"))
    assert files1 == sorted(str(p.relative_to(out2)) for p in out2.rglob("*"))  # the same files, no others


@mpi
def test_eval_on_two_ranks_prints_the_one_process_table(tiny_runs):
    out1 = tiny_runs["loc"][0]
    args = ["minisnn-eval", "loc", "--checkpoint", str(out1 / "hybrid_snn.npz"), "--quiet"]
    one, two = alone("cli", "--", *args), mpirun("cli", "--", *args)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert two.stdout == one.stdout  # whole batches per rank: the same sums in the same order


@mpi
def test_a_killed_rank_ends_the_job_and_resume_completes(tiny_runs, tmp_path):
    """Rank 1 is killed in the ANN's second epoch (3 batches an epoch: step 5); the job ends
    (no hang), the first epoch's checkpoint is there, and --resume under mpirun ends with the
    results of the uninterrupted 2-rank run."""
    out = tmp_path / "run"
    args = ["minisnn-train", "loc", "--preset", "tiny", "--quiet", "--no-cache", "--out", str(out)]
    killed = mpirun("cli", "--kill-at", "5", "--", *args)
    assert killed.returncode != 0
    assert not (out / "results.json").exists() and (out / "state" / "ann_train.npz").is_file()
    resumed = mpirun("cli", "--", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "ann: continued after 1 epochs" in resumed.stderr
    a = json.loads((out / "results.json").read_text())
    b = json.loads((tiny_runs["loc"][2] / "results.json").read_text())
    assert a["table"] == b["table"]
    assert a["history"]["ann"]["val"] == b["history"]["ann"]["val"]


@mpi
def test_an_exception_on_rank_1_is_reported_by_rank_0(tmp_path):
    res = mpirun("cli", "--fail-at", "2", "--", "minisnn-train", "loc", "--preset", "tiny", "--quiet", "--no-cache",
                 "--out", str(tmp_path / "run"), prepend_rank=True)
    assert res.returncode == 1
    lines = error_lines(res.stderr)
    assert lines == ["[0] error: RuntimeError: injected failure at step 2 (rank 1 of 2)"], res.stderr
    assert "Traceback" not in res.stderr
    assert res.seconds < parallel.GRACE_S + 30  # rank 0 heard of it at the next exchange


@mpi
def test_a_drift_between_the_ranks_is_an_error(tmp_path):
    res = mpirun("cli", "--drift-at", "2", "--", "minisnn-train", "loc", "--preset", "tiny", "--quiet", "--no-cache",
                 "--out", str(tmp_path / "run"), prepend_rank=True)
    assert res.returncode == 1
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("[0] error: the 2 MPI processes no longer agree on the parameters "
                                                   "and optimizer state after epoch 0"), res.stderr


@mpi
@pytest.mark.parametrize("args, says", [
    (["--resume"], "--resume: "),                 # nothing to continue: found by rank 0's check of --out
    (["--steps", "0"], "--steps must be >= 1"),   # after MPI started: every rank finds it
    (["--epochs", "abc"], "--epochs"),            # a usage error, before MPI started
])
def test_bad_input_is_reported_once(tmp_path, args, says):
    res = mpirun("cli", "--", "minisnn-train", "loc", "--preset", "tiny", "--quiet", "--out", str(tmp_path / "run"),
                 *args, prepend_rank=True)
    assert res.returncode == 2
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("[0] error: ") and says in lines[0], res.stderr
    assert "Traceback" not in res.stderr


@mpi
def test_folds_on_two_ranks_match_one_process(tmp_path):
    args = ["minisnn-train", "loc", "--preset", "tiny", "--quiet", "--no-cache", "--folds", "2", "--epochs", "1",
            "--hybrid-epochs", "0"]
    one = alone("cli", "--", *args, "--out", str(tmp_path / "one"))
    two = mpirun("cli", "--", *args, "--out", str(tmp_path / "two"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert a["folds"] == b["folds"] == 2
    for ra, rb in zip(a["table"], b["table"]):
        assert abs(ra["mean_iou"] - rb["mean_iou"]) <= 1e-3, (ra["model"], ra["mean_iou"], rb["mean_iou"])
