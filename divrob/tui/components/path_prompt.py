"""Ask for a file name (exports); relative names land in the workspace."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class PathPrompt(ModalScreen[str | None]):
    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical {
        width: 64; max-width: 100%; height: auto; border: thick $primary; background: $surface; padding: 0 1;
    }
    PathPrompt #prompt-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, hint: str = "") -> None:
        super().__init__()
        self.prompt_title = title
        self.default = default
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.prompt_title, markup=False)
            yield Input(self.default, id="prompt-input")
            yield Static(self.hint or "enter: write · esc: cancel", id="prompt-hint", markup=False)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
