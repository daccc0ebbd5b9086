"""Import heavy modules in the background while the caller does work that releases the
interpreter (reading the store: DuckDB runs without the GIL), so a fresh process pays for the
slower of the two rather than their sum. scipy.special alone costs about a third of a second.

Importing the same module from two threads is safe: the second waits for the first to finish.
An import error in the background is not lost: the caller's own import of the module (which it
makes anyway) raises it.
"""

from __future__ import annotations

import importlib
import threading


def preload(*modules: str) -> threading.Thread:
    """Start importing `modules` (in order) in a daemon thread; returns the thread."""
    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - raised again where the caller imports it
                return

    thread = threading.Thread(target=run, name="divrob-preload", daemon=True)
    thread.start()
    return thread
