"""Errors never block: workers post `ShowError`, the app shows it as a toast once per distinct
error (see `DivrobApp.report_error`). A modal is kept only for what needs a decision (a workspace
that cannot be opened: leave). Every modal here lets `q`, `1`-`5` and `?` through (`PassThrough`)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

SCREEN_KEYS = (("1", "recipes"), ("2", "study"), ("3", "jobs"), ("4", "results"), ("5", "trends"))


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


class PassThrough(ModalScreen):
    """A modal that does not trap: `q` quits, `1`-`5` close it and switch screens, `?` shows the
    keys. (Textual stops the app's bindings at a modal, so the modal carries them.)"""

    BINDINGS = [
        Binding("q", "app.quit", "Quit", show=False),
        *(Binding(key, f"leave_to('{mode}')", mode, show=False) for key, mode in SCREEN_KEYS),
        Binding("question_mark", "leave_to('help')", "Help", show=False),
    ]

    def action_leave_to(self, mode: str) -> None:
        self.dismiss(None)
        if mode == "help":
            self.app.action_help()
        elif getattr(self.app, "workspace_failed", False):
            return  # nothing to switch to: the dismissal leaves the app
        else:
            self.app.switch_mode(mode)


class ErrorModal(PassThrough):
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

    def __init__(self, title: str, message: str, context: str = "", hint: str = "enter / esc: close") -> None:
        super().__init__()
        self.title_text = title + (f" — {context}" if context else "")
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="error-title", markup=False)
            yield Static(self.message, id="error-message", markup=False)
            yield Static(self.hint, id="error-hint", markup=False)

    def action_dismiss(self) -> None:
        self.dismiss(None)
