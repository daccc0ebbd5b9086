"""Filling a DataTable in one step, each column as wide as its widest cell.

DataTable measures new cells later, when its message queue is idle, so a frame drawn right after
an update (on a busy machine, or a snapshot) could show columns squeezed to their headers.
DataTable reads a str cell as rich markup; cells are data (a label may hold "[x]"), so they go
in as plain Text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text


def fit_name(name: str, width: int) -> str:
    """`name` in at most `width` characters, cut in the middle ("image…-150000"): the end of a
    group name is what tells sweep values apart (imagenet-5000 and imagenet-50000), so it stays."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2 - 1
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


def _width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def fill_table(table, headers: Sequence[str], rows: Sequence[Sequence[Any]],
               column_keys: Sequence[str] | None = None, row_keys: Sequence[str] | None = None) -> None:
    """Replace the table's columns and rows."""
    table.clear(columns=True)
    for i, header in enumerate(headers):
        width = max([_width(header)] + [_width(r[i]) for r in rows])
        table.add_column(header, width=width, key=column_keys[i] if column_keys else None)
    for j, row in enumerate(rows):
        cells = [Text(c, end="") if isinstance(c, str) else c for c in row]
        table.add_row(*cells, key=row_keys[j] if row_keys else None)
