"""The top line: tabs for the five screens (the current one marked), `?` help, the workspace."""

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
        text = Text("divrob", style="bold")
        for key, mode, title in SCREENS:
            text.append(" ")
            if mode == self.current:  # a tab that stands out in colour and without it
                text.append(f"[{key} {title}]", style="bold reverse")
            else:
                text.append(f" {key} {title} ", style="dim")
        text.append("  ? help", style="dim")
        name = getattr(self.app, "workspace_name", "")
        if name:
            pad = self.size.width - text.cell_len - len(name) - 1
            if pad >= 1:
                text.append(" " * pad + name, style="dim")
        return text
