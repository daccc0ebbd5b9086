"""`?`: the keys of the screen underneath and the keys that work everywhere, read from the
screens' own bindings (one list, never a second copy that goes stale)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from divrob.tui.components.error_modal import PassThrough
from divrob.tui.components.nav_bar import SCREENS


def key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "escape": "esc", "space": "space"}.get(key, key)


def screen_keys(screen) -> list[tuple[str, str]]:
    """(key, what it does) for a screen's own bindings, shown or not."""
    out = []
    for b in getattr(type(screen), "BINDINGS", []):
        if isinstance(b, Binding) and b.description:
            out.append((", ".join(key_name(k) for k in b.key.split(",")), b.description))
    return out


GLOBAL_KEYS = [*((key, title) for key, _, title in SCREENS), ("?", "this help"), ("ctrl+p", "command palette"),
               ("q", "quit")]


class HelpOverlay(PassThrough):
    DEFAULT_CSS = """
    HelpOverlay { align: center middle; }
    HelpOverlay > Vertical {
        width: 60; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpOverlay .help-title { text-style: bold; }
    HelpOverlay #help-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.help_title = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        def lines(pairs):
            return "\n".join(f"{k:>8}  {v}" for k, v in pairs)

        with Vertical():
            yield Static(f"{self.help_title} keys", classes="help-title", markup=False)
            yield Static(lines(self.keys) or "        (none of its own)", id="help-screen", markup=False)
            yield Static("everywhere", classes="help-title")
            yield Static("  " + " · ".join(f"{k} {v}" for k, v in GLOBAL_KEYS), id="help-global", markup=False)
            yield Static("esc: close", id="help-hint")

    def action_dismiss(self) -> None:
        self.dismiss(None)

    def action_leave_to(self, mode: str) -> None:
        if mode == "help":
            self.dismiss(None)  # `?` again closes it
        else:
            super().action_leave_to(mode)
