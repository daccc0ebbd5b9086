"""A tiny progress interface so core code reports long work without knowing the front-end.

The CLI passes a rich-backed reporter, the TUI a widget-backed one, processes whose output is a
log file (the detached scheduler, a background study, slot workers) a `LogReporter`; tests and
library users get the silent default. Messages are plain text: a front-end that renders markup
escapes them (a message may well contain brackets, like "[datasets]").
"""

from __future__ import annotations

import logging
import time
from typing import IO, Protocol

LOGGER = "divrob"


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


class _LoggedTask(_SilentTask):
    """No bar in a log file: one line when a task that took a while ends."""

    def __init__(self, reporter: "LogReporter", description: str) -> None:
        self._reporter, self._description, self._t0 = reporter, description, time.monotonic()
        self._closed = False

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        self._description = description or self._description

    def close(self) -> None:
        elapsed = time.monotonic() - self._t0
        if not self._closed and elapsed >= 1.0:
            self._reporter.log(f"{self._description}: done in {elapsed:.1f}s")
        self._closed = True


class LogReporter:
    """Messages to stdlib logging (the `divrob` logger) as plain text, with an optional prefix."""

    def __init__(self, prefix: str = "", logger: logging.Logger | None = None) -> None:
        self.prefix = prefix
        self.logger = logger or logging.getLogger(LOGGER)

    def task(self, description: str, total: int | None = None) -> Task:
        return _LoggedTask(self, description)

    def log(self, message: str) -> None:
        self.logger.info("%s%s", self.prefix, message)


def log_to(stream: IO[str]) -> None:
    """Write the `divrob` logger's records to `stream` as timestamped plain lines (for a process
    whose output is a log file)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
