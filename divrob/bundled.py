"""Files shipped with divrob: the recipes (`recipes/`) and class metadata (`data_manifests/`).

In the repository they sit at the top level, beside the package. A wheel carries them inside
the package as `divrob/_bundled/` (setup.py copies them there at build time), so an installed
divrob never depends on a source checkout; an editable install reads them from the checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from divrob.errors import DivrobError, RecipeError

BUNDLED_DIRS = ("recipes", "data_manifests")
PACKAGED = "_bundled"  # the folder inside the installed package


def bundled_root() -> Path:
    """The directory that holds recipes/ and data_manifests/: inside the installed package, else
    the source checkout of an editable install."""
    packaged = Path(str(resources.files("divrob"))) / PACKAGED
    if all((packaged / d).is_dir() for d in BUNDLED_DIRS):
        return packaged
    checkout = Path(__file__).resolve().parent.parent
    if all((checkout / d).is_dir() for d in BUNDLED_DIRS):
        return checkout
    raise DivrobError(
        f"divrob's bundled recipes and class metadata are missing (looked in {packaged} and {checkout}); "
        "reinstall divrob (`pip install divrob` or, from a clone, `pip install .`)"
    )


def bundled(relative: str) -> Path:
    """A shipped file or folder, e.g. `recipes/demo/quickstart.toml` or `data_manifests/...`."""
    path = bundled_root() / relative
    if not path.exists():
        raise DivrobError(f"{relative} is not among divrob's bundled files ({bundled_root()}); reinstall divrob")
    return path


def bundled_recipes() -> list[str]:
    """The names of the shipped recipes, e.g. `paper/fig04-quantity-imagenet`."""
    root = bundled_root() / "recipes"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.toml"))


def resolve_recipe(arg: str | Path) -> Path:
    """A recipe file: a path that exists, else a bundled recipe named like `paper/fig04-...`
    (with or without `.toml`, with or without a leading `recipes/`)."""
    path = Path(arg)
    if path.exists():
        return path
    name = str(arg).removesuffix(".toml").removeprefix("recipes/")
    if not path.is_absolute() and ".." not in Path(name).parts:
        candidate = bundled_root() / "recipes" / f"{name}.toml"
        if candidate.is_file():
            return candidate
    names = bundled_recipes()
    near = [n for n in names if Path(name).name in n] or names[:6]
    raise RecipeError(arg, "", "no such file, and no bundled recipe of that name; bundled recipes include "
                      + ", ".join(near) + " (`divrob recipes list` shows them all)")
