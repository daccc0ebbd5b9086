"""`--where`: a small, safe filter language for result rows, applied with pandas.

    distribution!=scratch, arch in resnet18|resnet50, total>=25000, epoch<=6

Clauses are separated by commas and must all hold. Each is `FIELD OP VALUE` with OP one of
`=` (or `==`), `!=`, `>`, `>=`, `<`, `<=`, or `FIELD in A|B|C` / `FIELD not in A|B`. A value may
be quoted ('...' or "...") to hold commas, pipes or spaces. FIELD is any column of the rows
(run fields and sweep keys such as `total` or `classes.random`).

Nothing here is evaluated as code or spliced into SQL: the text is tokenised by one regular
expression and turned into boolean masks, so a filter can only ever select rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from divrob.errors import DivrobError

if TYPE_CHECKING:  # parsing a filter needs no pandas; applying one imports it
    import pandas as pd

OPS = ("=", "==", "!=", ">", ">=", "<", "<=", "in", "not in")
_ORDERED = (">", ">=", "<", "<=")

_FIELD = r"[A-Za-z_][A-Za-z0-9_.]*"
_VALUE = r"""'[^']*'|"[^"]*"|[^,'"]*"""
_CLAUSE = re.compile(
    rf"\s*(?P<field>{_FIELD})\s*"
    rf"(?:(?P<op>==|!=|>=|<=|=|>|<)|\s(?P<word>not\s+in|in)\s)"
    rf"\s*(?P<value>(?:{_VALUE})(?:\|(?:{_VALUE}))*)\s*(?:,|$)"
)


class WhereError(DivrobError):
    """A --where expression that does not parse or names an unknown field."""

    exit_code = 2


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    values: tuple[str, ...]  # one value, or the alternatives of `in` / `not in`

    def __str__(self) -> str:
        if self.op in ("in", "not in"):
            return f"{self.field} {self.op} {'|'.join(self.values)}"
        return f"{self.field}{self.op}{self.values[0]}"


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def parse_where(expr: str | None) -> list[Clause]:
    """Clauses of a --where expression; an empty or missing one selects everything."""
    if expr is None or not expr.strip():
        return []
    clauses, pos = [], 0
    text = expr.strip()
    while pos < len(text):
        m = _CLAUSE.match(text, pos)
        if m is None or m.end() == pos:
            rest = text[pos:].split(",")[0].strip()
            raise WhereError(
                f"--where: cannot read {rest!r}; write FIELD=VALUE, FIELD!=VALUE, FIELD>=NUMBER "
                f"or FIELD in A|B, separated by commas (e.g. 'arch=resnet18, total>=5000')")
        op = m.group("op") or " ".join(m.group("word").split())
        raw = m.group("value").strip()
        # Only `in` lists alternatives; after = or != a pipe is part of the value.
        parts = _pipe_split(raw) if op in ("in", "not in") else [raw]
        if not parts or any(not p.strip() for p in parts):
            raise WhereError(f"--where: {m.group(0).strip(' ,')!r} is missing a value; "
                             f"write '' to match an empty (missing) value")
        values = tuple(_unquote(p) for p in parts)
        if op == "==":
            op = "="
        if op in _ORDERED and _number(values[0]) is None:
            raise WhereError(f"--where: {m.group('field')}{op}{values[0]}: {op} needs a number")
        clauses.append(Clause(m.group("field"), op, values))
        pos = m.end()
        if text[m.end() - 1:m.end()] == "," and not text[pos:].strip():
            raise WhereError("--where: the expression ends with a comma; remove it or add a clause")
    return clauses


def _pipe_split(text: str) -> list[str]:
    """Split on | outside quotes."""
    return [m.group(0) for m in re.finditer(r"""(?:'[^']*'|"[^"]*"|[^|])+""", text)]


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def _as_text(col: pd.Series) -> pd.Series:
    """Column values as the user would type them: 480.0 → '480', missing → ''."""
    def one(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)
    return col.map(one)


def _equal(col: pd.Series, value: str) -> pd.Series:
    # Numbers compare as numbers (so total=5e3 matches 5000), everything else as text.
    import pandas as pd

    num = _number(value)
    if num is not None and pd.api.types.is_numeric_dtype(col):
        return (pd.to_numeric(col, errors="coerce") == num).fillna(False)
    return _as_text(col) == value


def clause_mask(df: pd.DataFrame, clause: Clause) -> pd.Series:
    import pandas as pd

    if clause.field not in df.columns:
        raise WhereError(f"--where: unknown field {clause.field!r}; fields: {', '.join(map(str, df.columns))}")
    col = df[clause.field]
    if clause.op in _ORDERED:
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().sum() == 0 and len(col):
            raise WhereError(f"--where: {clause}: field {clause.field!r} holds no numbers")
        x = float(clause.values[0])
        cmp = {">": num > x, ">=": num >= x, "<": num < x, "<=": num <= x}[clause.op]
        return cmp.fillna(False)
    any_equal = pd.Series(False, index=df.index)
    for v in clause.values:
        any_equal |= _equal(col, v)
    return ~any_equal if clause.op in ("!=", "not in") else any_equal


def apply_where(df: pd.DataFrame, expr: str | list[Clause] | None) -> pd.DataFrame:
    """Rows of `df` for which every clause holds (a copy; the index is reset)."""
    import pandas as pd

    clauses = parse_where(expr) if not isinstance(expr, list) else expr
    mask = pd.Series(True, index=df.index)
    for c in clauses:
        mask &= clause_mask(df, c)
    return df[mask].reset_index(drop=True)
