"""Crash safety and determinism of ``minisnn-train`` (issue 8), in real subprocesses.

* kill -9 a tiny LocNet run during ANN training and a tiny segmentation run during hybrid
  fine-tuning, as soon as their first epoch checkpoint is on disk, then ``--resume``: the
  results must be those of an uninterrupted run, bit for bit;
* the same seed and thread count give the same results.json metrics in two processes;
* an existing run is never clobbered without ``--overwrite``.

Every run uses ``--threads 1`` (the results are compared bit for bit, and the machine is shared).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minisnn.train import read_fit_state

LOC = ["loc", "--preset", "tiny", "--epochs", "40", "--seed", "1"]
SEG = ["seg", "--preset", "tiny", "--hybrid-epochs", "6", "--seed", "0"]


def _cmd(args, out) -> list:
    return [sys.executable, "-m", "minisnn.apps.cli", *args, "--out", str(out), "--threads", "1", "--quiet",
            "--no-cache"]


def _run(args, out, *extra) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd(args, out) + list(extra), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _kill_when(args, out, checkpoint: str, timeout: float = 60.0) -> int:
    """Start a run, SIGKILL it as soon as ``out/state/<checkpoint>`` exists; the epochs it had saved."""
    path = Path(out) / "state" / checkpoint
    proc = subprocess.Popen(_cmd(args, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (status {proc.returncode}) before {path} appeared: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{path} did not appear within {timeout} s")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (Path(out) / "results.json").exists(), "the run finished before it was killed"
    return read_fit_state(path)[1]["history"]["epochs_run"]


def _metrics(out) -> dict:
    """Everything in results.json that is a result (not a time or a path)."""
    res = json.loads((Path(out) / "results.json").read_text())
    keep = {k: res[k] for k in ("table", "rates_hz", "iou_vs_steps", "dice_vs_steps", "recovery")
            if k in res}
    keep["history"] = {phase: {k: v for k, v in h.items() if k not in ("time", "resumed_from")}
                       for phase, h in res["history"].items()}
    return keep


@pytest.fixture(scope="module")
def loc_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("loc_ref")
    _run(LOC, out)
    return out


def test_same_seed_same_threads_same_metrics_in_two_processes(loc_reference, tmp_path):
    _run(LOC, tmp_path)
    assert _metrics(tmp_path) == _metrics(loc_reference)


def test_kill_during_ann_training_then_resume_gives_the_uninterrupted_results(loc_reference, tmp_path):
    saved = _kill_when(LOC, tmp_path, "ann_train.npz")
    assert 1 <= saved < 40  # killed mid-training, with at least one epoch on disk
    assert not (tmp_path / "state" / "hybrid_train.npz").exists()
    proc = _run(LOC, tmp_path, "--resume")
    assert f"ann: continued after {saved} epochs" in proc.stderr, proc.stderr
    assert _metrics(tmp_path) == _metrics(loc_reference)
    assert json.loads((tmp_path / "state" / "run.json").read_text())["phases"] == ["ann", "hybrid", "outputs"]


def test_kill_during_hybrid_training_then_resume_gives_the_uninterrupted_results(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    _run(SEG, ref)
    saved = _kill_when(SEG, out, "hybrid_train.npz")
    assert saved >= 1
    assert json.loads((out / "state" / "run.json").read_text())["phases"] == ["ann"]
    proc = _run(SEG, out, "--resume")
    assert "ann: loaded (finished earlier)" in proc.stderr, proc.stderr
    assert _metrics(out) == _metrics(ref)
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(p.name for p in
                                                                          (ref / "predictions").iterdir())


def test_an_existing_run_is_not_clobbered(loc_reference, tmp_path):
    before = (loc_reference / "results.json").read_bytes()
    proc = subprocess.run(_cmd(LOC, loc_reference), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --out {loc_reference} already holds a run"), lines
    assert "use --overwrite to replace it or --resume to continue it" in lines[0]
    assert (loc_reference / "results.json").read_bytes() == before


def test_ctrl_c_ends_with_one_line_and_status_130(tmp_path):
    """SIGINT mid-training (often inside a Numba kernel, which turns it into a SystemError)."""
    path = tmp_path / "state" / "ann_train.npz"
    proc = subprocess.Popen(_cmd(LOC, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: the last checkpoint is in")
    assert read_fit_state(path)[1]["history"]["epochs_run"] >= 1
