"""A plain (non-editable) ``pip install .`` holds the engine and the apps and runs the main job.

The apps live in ``apps/`` at the top level and install as ``minisnn.apps`` (a ``package-dir``
mapping in ``pyproject.toml``); an editable install resolves that mapping at import time, a
wheel copies the files.  This test installs a wheel into a folder of its own (``--target``,
without dependencies: they are the ones this interpreter already has) and runs
``minisnn-train loc --preset tiny`` from that folder, away from the checkout."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_plain_install_runs_the_main_job(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(site), str(ROOT)], check=True, timeout=600)
    assert (site / "minisnn" / "apps" / "loc.py").is_file()
    assert (site / "minisnn" / "apps" / "plots.py").is_file()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import minisnn.apps.loc as m; print(m.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    out = tmp_path / "run"
    done = subprocess.run([str(site / "bin" / "minisnn-train"), "loc", "--preset", "tiny", "--quiet",
                           "--out", str(out)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["table"]][:2] == ["constant box (train mean)", "ANN (LocNet)"]
    assert (out / "report.md").is_file() and (out / "examples.png").is_file()
