"""A tiny progress interface so core code reports long work without knowing the front-end.

The CLI passes a rich-backed reporter, the TUI a widget-backed one; tests and library users
get the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def update(self, *, total: int | None = None, description: str | None = None) -> None: ...

    def close(self) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None = None) -> Task: ...

    def log(self, message: str) -> None: ...


class _SilentTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class SilentReporter:
    def task(self, description: str, total: int | None = None) -> Task:
        return _SilentTask()

    def log(self, message: str) -> None:
        pass


SILENT = SilentReporter()
