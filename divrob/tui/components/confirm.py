"""A yes/no question for actions that start or stop jobs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from divrob.tui.components.error_modal import PassThrough


class Confirm(PassThrough):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 60; max-width: 100%; height: auto; border: thick $warning; background: $surface; padding: 0 1;
    }
    Confirm #confirm-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Static("y: yes · n / esc: no", id="confirm-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
