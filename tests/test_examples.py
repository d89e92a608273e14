"""The guided tour stays true: every example runs and draws its figures (docs/tour.md).

* every ``examples/NN_*.py`` is named in ``docs/tour.md`` and every example the tour names
  exists;
* each example runs in a subprocess with ``--out tmp_path``, exits 0, prints what it
  measured, and writes exactly the PNG figures the tour names for it (``NN_*.png``), each a
  valid PNG image;
* every ``file::name`` the tour points at exists: test functions in their test files,
  functions and classes in the source files.

All six examples together take about 20 s on two cores.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour.md"
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="the examples are smoke tests of the compiled engine (plain-Python kernels are too slow)",
)


def tour_text() -> str:
    return TOUR.read_text(encoding="utf-8")


def example_scripts() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


def tour_examples() -> set[str]:
    return set(re.findall(r"examples/(\d\d_\w+\.py)", tour_text()))


def tour_figures(script: str) -> set[str]:
    """The PNGs the tour names for an example: those starting with its number."""
    return {name for name in re.findall(r"\b(\d\d_\w+\.png)\b", tour_text()) if name[:3] == script[:3]}


def test_the_tour_and_the_examples_folder_list_the_same_examples():
    scripts = set(example_scripts())
    assert scripts, "no examples/NN_*.py found"
    assert tour_examples() - scripts == set(), "the tour names examples that do not exist"
    assert scripts - tour_examples() == set(), "examples missing from docs/tour.md"
    numbers = [s[:2] for s in sorted(scripts)]
    assert len(set(numbers)) == len(numbers), f"two examples share a number: {numbers}"


def test_every_example_has_figures_in_the_tour():
    for script in example_scripts():
        assert tour_figures(script), f"docs/tour.md names no NN_*.png figure for {script}"


def _defined_names(path: Path) -> set[str]:
    """Names of every function and class defined in a Python file (at any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_every_file_function_and_test_the_tour_names_exists():
    text = tour_text()
    refs = re.findall(r"`((?:minisnn|tests|examples)/[\w/]+\.py)(?:::([\w.]+))?`", text)
    assert len(refs) > 50, "the tour's references were not found (format `file::name`)"
    missing = []
    for path, name in refs:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name:
            defined = _defined_names(file)
            missing += [f"{path}::{name}" for part in name.split(".") if part not in defined]
    assert not missing, f"docs/tour.md points at things that do not exist: {missing}"


@pytest.mark.parametrize("script", example_scripts())
def test_example_runs_and_writes_its_figures(script, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"{script} failed ({seconds:.1f} s):\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{script} printed nothing"
    print(f"\n{script}: {seconds:.1f} s")

    expected = tour_figures(script)
    written = {p.name for p in out.glob("*.png")}
    assert written == expected, f"{script} wrote {sorted(written)}, the tour names {sorted(expected)}"
    for name in sorted(expected):
        with Image.open(out / name) as img:
            img.verify()  # a complete, uncorrupted PNG
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 100 and img.height >= 50, (name, img.format, img.size)
