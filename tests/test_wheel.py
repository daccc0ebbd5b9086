"""divrob installs like a package: a wheel built from this checkout, installed into a fresh
virtual environment and run from another directory, finds its bundled recipes and class metadata
(they ship inside the wheel; nothing reads the source checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(REPO)], check=True, cwd=tmp)
    wheel = next(dist.glob("divrob-*.whl"))
    env_dir = tmp / "venv"
    # reuse the installed dependencies (torch is several GB); divrob itself comes only from the wheel
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIVROB_WORKSPACE")}
    return env_dir, elsewhere, env


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    env_dir, cwd, env = installed
    return subprocess.run([str(env_dir / "bin" / "divrob"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_divrob_comes_from_the_wheel(installed):
    env_dir, cwd, env = installed
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import divrob, divrob.bundled as b; "
                          "print(divrob.__file__); print(b.bundled_root())"],
                         cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].startswith(str(env_dir)), out
    assert out[1].startswith(str(env_dir)) and out[1].endswith("_bundled"), out


def test_demo_help(installed):
    r = _run(installed, "demo", "--help")
    assert r.returncode == 0, r.stderr
    assert "demo" in r.stdout


def test_taxonomy_depths_json(installed):
    r = _run(installed, "taxonomy", "depths", "--json")
    assert r.returncode == 0, r.stderr
    depths = json.loads(r.stdout)
    assert depths, r.stdout


def test_bundled_recipe_by_name(installed):
    r = _run(installed, "recipes", "show", "paper/fig04-quantity-imagenet")
    assert r.returncode == 0, r.stderr
    assert "fig4-quantity-imagenet" in r.stdout
    r = _run(installed, "recipes", "validate", "paper/fig04-quantity-imagenet", "demo/quickstart")
    assert r.returncode == 0, r.stderr


def test_unknown_recipe_name_is_a_clear_error(installed):
    r = _run(installed, "recipes", "show", "paper/no-such-figure")
    assert r.returncode == 2
    assert "no bundled recipe of that name" in r.stderr and "Traceback" not in r.stderr
