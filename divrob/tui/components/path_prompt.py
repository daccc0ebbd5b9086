"""Ask for a file name (exports, a recipe to open), with path completion: the rest of the
first matching name is suggested as you type; tab or → takes it. Relative names of exports
land in the workspace; a recipe to open may be anywhere."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static


def complete_path(value: str, base: Path | None = None, suffixes: tuple[str, ...] = ()) -> str | None:
    """`value` completed to the first (sorted) existing name that starts with it: folders end in
    '/', files only with one of `suffixes` (all when empty). None when nothing matches."""
    if not value:
        return None
    typed = Path(value).expanduser()
    stem = value.rpartition("/")[2]
    folder = typed if value.endswith("/") else typed.parent
    if not folder.is_absolute() and base is not None:
        folder = base / folder
    try:
        names = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return None
    stem = "" if value.endswith("/") else stem
    for p in names:
        if not p.name.startswith(stem) or (p.name.startswith(".") and not stem.startswith(".")):
            continue
        if p.is_dir():
            return value + p.name[len(stem):] + "/"
        if not suffixes or p.suffix in suffixes:
            return value + p.name[len(stem):]
    return None


class PathSuggester(Suggester):
    def __init__(self, base: Path | None = None, suffixes: tuple[str, ...] = ()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.base = base
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, self.base, self.suffixes)


class PathPrompt(ModalScreen[str | None]):
    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical {
        width: 64; max-width: 100%; height: auto; border: thick $primary; background: $surface; padding: 0 1;
    }
    PathPrompt #prompt-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, title: str, default: str, hint: str = "", *, base: Path | None = None,
                 suffixes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.prompt_title = title
        self.default = default
        self.hint = hint
        self.suggester = PathSuggester(base, suffixes)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.prompt_title, markup=False)
            yield Input(self.default, id="prompt-input", suggester=self.suggester)
            yield Static(self.hint or "enter: write · esc: cancel", id="prompt-hint", markup=False)

    def action_complete(self) -> None:
        field = self.query_one("#prompt-input", Input)
        done = complete_path(field.value, self.suggester.base, self.suggester.suffixes)
        if done:
            field.value = done
            field.cursor_position = len(done)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_recipe_prompt(app) -> None:
    """Ask for a recipe file anywhere (completion from the current folder); plan it on Study."""
    import os

    def chosen(value: str | None) -> None:
        if not value:
            return
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path(os.getcwd()) / path
        if not path.is_file():
            app.notify(f"no recipe file at {path}", severity="error", markup=False)
            return
        app.use_recipe(path)

    app.push_screen(PathPrompt("Open a recipe (.toml), from anywhere:", "", "tab / →: complete · enter: open · "
                               "esc: cancel · relative to the folder divrob started in", suffixes=(".toml",)),
                    chosen)
