"""Errors in a modal, never a crash: workers post `ShowError`, the app shows `ErrorModal`."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static


class ShowError(Message):
    """Ask the app to show an error (safe to post from a worker thread)."""

    def __init__(self, error: BaseException, context: str = "") -> None:
        self.error = error
        self.context = context
        super().__init__()


def describe(error: BaseException) -> tuple[str, str]:
    """A title and a message: a user mistake speaks for itself; anything else names its type."""
    from divrob.errors import DivrobError

    if isinstance(error, DivrobError):
        return "error", str(error)
    return f"unexpected {type(error).__name__}", str(error) or repr(error)


class ErrorModal(ModalScreen[None]):
    DEFAULT_CSS = """
    ErrorModal { align: center middle; }
    ErrorModal > Vertical {
        width: 72; max-width: 100%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    ErrorModal #error-title { text-style: bold; color: $error; }
    ErrorModal #error-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, title: str, message: str, context: str = "") -> None:
        super().__init__()
        self.title_text = title + (f" — {context}" if context else "")
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="error-title", markup=False)
            yield Static(self.message, id="error-message", markup=False)
            yield Static("enter / esc: close", id="error-hint")

    def action_dismiss(self) -> None:
        self.dismiss(None)
