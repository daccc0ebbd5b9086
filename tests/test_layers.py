"""Layers point one way (ARCHITECTURE.md): every import between divrob's packages goes down the
list below, so the pipeline can be read and tested bottom-up and no package drags in a front-end.
Checked statically over the source (every import, also those inside functions), and by importing
each package alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import divrob

PKG = Path(divrob.__file__).parent

# Lowest first. A package may import packages of lower layers; within the foundation layer,
# modules may import each other (they are single small modules: errors, files, vocabularies).
LAYERS: list[set[str]] = [
    {"errors", "fileio", "progress", "states", "apportion", "archs", "devices", "bundled", "workspace", "preload"},
    {"taxonomy"},
    {"sources"},
    {"downstream"},
    {"recipes"},
    {"train"},
    {"runs"},
    {"store"},
    {"dispatch"},
    {"analysis"},
    {"plots"},
    {"tui"},
    {"cli"},
    {"__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0]


def _edges() -> list[tuple[str, str, str]]:
    out = []
    for f in sorted(PKG.rglob("*.py")):
        src = _unit(f)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("divrob."):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("divrob.")]
            else:
                continue
            for t in targets:
                dst = t.split(".")[1]
                if dst != src:
                    out.append((src, dst, f"{f.relative_to(PKG.parent)}:{node.lineno}"))
    return out


def test_every_package_has_a_layer():
    units = {_unit(f) for f in PKG.rglob("*.py")}
    assert units <= set(RANK), f"add {sorted(units - set(RANK))} to LAYERS (and to ARCHITECTURE.md)"


def test_imports_point_down():
    bad = [f"{where}: {src} imports {dst}" for src, dst, where in _edges()
           if RANK[dst] > RANK[src] or (RANK[dst] == RANK[src] and RANK[src] != 0)]
    assert not bad, "imports that point up (or sideways) a layer:\n" + "\n".join(bad)


def test_train_never_imports_runs():
    assert not [e for e in _edges() if e[0] == "train" and e[1] == "runs"]


@pytest.mark.parametrize("package", sorted(n for layer in LAYERS for n in layer if not n.startswith("__")))
def test_each_package_imports_alone(package):
    """No import cycle hides behind the order in which the test session happened to import things."""
    subprocess.run([sys.executable, "-c", f"import divrob.{package}"], check=True, cwd=PKG.parent)
