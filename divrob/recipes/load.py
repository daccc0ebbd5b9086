"""Read, validate and expand a recipe file into a study and its concrete distributions."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from divrob.errors import RecipeError
from divrob.fileio import sha256_hex
from divrob.recipes.axes import check_taxonomy
from divrob.recipes.schema import Distribution, Generate, RawRecipe, Study
from divrob.recipes.sweep import expand

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class ExpandedDistribution:
    distribution: Distribution
    sweep: dict[str, Any]  # the swept keys and their values for this distribution
    index: int  # position of its [[distribution]] table in the file


@dataclass
class Recipe:
    path: Path
    text: str
    study: Study
    distributions: list[ExpandedDistribution] = field(default_factory=list)
    generate: Generate = field(default_factory=Generate)

    @property
    def hash(self) -> str:
        return sha256_hex(self.text)[:16]

    def distribution(self, name: str) -> ExpandedDistribution:
        for d in self.distributions:
            if d.distribution.name == name:
                return d
        raise KeyError(name)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _first_error(e: ValidationError) -> tuple[str, str]:
    err = e.errors()[0]
    loc = tuple(p for p in err["loc"])
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling against the recipe schema in the README)"
    return _loc(loc), msg


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from a file, or a bundled recipe by name (`paper/fig04-quantity-imagenet`)."""
    from divrob.bundled import resolve_recipe

    path = resolve_recipe(path)
    if path.is_dir():
        raise RecipeError(path, "", "is a directory, expected a .toml recipe file")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(path, "", f"not valid TOML: {e}") from None
    try:
        parsed = RawRecipe.model_validate(raw)
    except ValidationError as e:
        field_path, msg = _first_error(e)
        raise RecipeError(path, field_path, msg) from None

    recipe = Recipe(path=path, text=text, study=parsed.study, generate=parsed.generate)
    seen: dict[str, int] = {}
    for i, raw_dist in enumerate(parsed.distribution):
        where = f"distribution[{i}]"
        try:
            concretes = expand(raw_dist)
        except ValueError as e:
            raise RecipeError(path, where, str(e)) from None
        for concrete, sweep in concretes:
            try:
                dist = Distribution.model_validate(concrete)
            except ValidationError as e:
                field_path, msg = _first_error(e)
                if sweep:
                    msg += f" (in the sweep value {sweep})"
                raise RecipeError(path, f"{where}.{field_path}" if field_path else where, msg) from None
            problem = check_taxonomy(dist) if dist.builds_manifest else None
            if problem:
                raise RecipeError(path, f"{where}.{problem[0]}", problem[1])
            if dist.name in seen:
                raise RecipeError(
                    path, f"{where}.name", f"{dist.name!r} is already the name of distribution[{seen[dist.name]}]"
                )
            seen[dist.name] = i
            recipe.distributions.append(ExpandedDistribution(dist, sweep, i))
    return recipe
