"""Figures: plotext in the terminal and the TUI (`terminal`), matplotlib on export (`export`)."""

PALETTE = ("blue+", "orange", "green", "magenta+", "cyan", "red", "orange+", "green+")
"""Group colours as plotext names, readable on dark and light terminals ("yellow" is not one:
plotext draws it uncoloured). Here, not in `terminal`, so the TUI can colour its tables without
importing numpy and scipy at start-up."""

RICH_COLORS = {"blue+": "bright_blue", "orange": "yellow", "green": "green", "magenta+": "bright_magenta",
               "cyan": "cyan", "red": "red", "orange+": "bright_yellow", "green+": "bright_green",
               "gray": "bright_black"}
"""The same ANSI colour under its rich name, for tables beside a plot (their legend)."""
