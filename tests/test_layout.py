"""The tree is the architecture: imports only go downward (engine -> never the apps)."""

import ast
from pathlib import Path

import minisnn
import minisnn.apps

ROOT = Path(minisnn.__file__).parent          # the engine
APPS = Path(minisnn.apps.__file__).parent     # the apps: apps/ at the top level, installed as minisnn.apps


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_engine_never_imports_the_apps():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for name in _imports(path):
            if "apps" in name.split(".") or name.lstrip(".").startswith("apps"):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_only_the_kernels_import_numba():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if "kernels" not in p.relative_to(ROOT).parts and "numba" in {n.split(".")[0] for n in _imports(p)}]
    assert not offenders, offenders


def test_the_apps_live_beside_the_engine_not_inside_it():
    assert APPS.name == "apps" and APPS.parent == ROOT.parent, APPS
    assert not (ROOT / "apps").exists()
