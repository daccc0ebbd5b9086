"""Sweep expansion: a list value in a distribution is a sweep; the grid is their product."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

# Keys whose value is itself a list; for these a list of lists is the sweep.
LIST_VALUED_KEYS = frozenset({"wnids", "names", "synsets", "sources", "supercategories"})


def _sweep_axes(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list]]:
    axes = []
    for key, value in obj.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            axes.extend(_sweep_axes(value, path))
        elif isinstance(value, list):
            if key in LIST_VALUED_KEYS and not (value and all(isinstance(v, list) for v in value)):
                continue
            axes.append((path, value))
    return axes


def _set_path(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


def expand(raw: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Expand one raw distribution into (concrete distribution, sweep values) pairs.

    The name is a template: `{total}` or `{subclass_fraction}` (the leaf key) or a dotted path
    `{classes.random}` is replaced by that axis' value. A sweep whose values are not in the
    name would give several distributions of one name, so that is an error (ValueError).
    """
    axes = _sweep_axes({k: v for k, v in raw.items() if k != "name"})
    for path, values in axes:
        if not values:
            raise ValueError(f"{'.'.join(path)}: an empty list sweeps over nothing")
        seen = set()
        for v in values:
            key = json.dumps(v, sort_keys=True, default=str)
            if key in seen:
                raise ValueError(f"{'.'.join(path)}: the sweep lists {v!r} twice; list each value once")
            seen.add(key)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError("name: must be a string")
    out = []
    for combo in itertools.product(*[values for _, values in axes]):
        dist = _deep_copy(raw)
        values: dict[str, Any] = {}
        for (path, _), value in zip(axes, combo):
            _set_path(dist, path, value)
            values[".".join(path)] = value
        fmt = {}
        for dotted, value in values.items():
            fmt[dotted.replace(".", "__")] = value
            fmt.setdefault(dotted.rsplit(".", 1)[-1], value)
        template = re.sub(r"\{(\w+(?:\.\w+)+)\}", lambda m: "{" + m.group(1).replace(".", "__") + "}", name)
        try:
            dist["name"] = template.format_map(_Strict(fmt))
        except KeyError as e:
            key = e.args[0].replace("__", ".")
            raise ValueError(f"name: {name!r} refers to {{{key}}}, which is not a swept key") from None
        except (ValueError, IndexError, AttributeError) as e:
            raise ValueError(f"name: {name!r} is not a valid name template ({e})") from None
        out.append((dist, values))
    if len(axes) and len({d["name"] for d, _ in out}) < len(out):
        swept = ", ".join("{" + ".".join(p).rsplit(".", 1)[-1] + "}" for p, _ in axes)
        raise ValueError(f"name: {name!r} must mention the swept keys ({swept}) so each distribution gets its own name")
    return out


class _Strict(dict):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)
