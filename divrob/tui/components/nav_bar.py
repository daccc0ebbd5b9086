"""The top line: which screen this is, the keys to the others, and the workspace."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

SCREENS = (("1", "recipes", "Recipes"), ("2", "study", "Study"), ("3", "jobs", "Jobs"),
           ("4", "results", "Results"), ("5", "trends", "Trends"))


class NavBar(Widget):
    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Text:
        text = Text(" divrob ", style="bold reverse")
        for key, mode, title in SCREENS:
            style = "bold reverse" if mode == self.current else ""
            text.append(" ")
            text.append(f"{key} {title}", style=style)
        name = getattr(self.app, "workspace_name", "")
        if name:
            pad = self.size.width - text.cell_len - len(name) - 1
            text.append(" " * max(1, pad) + name, style="dim")
        return text
