"""Figures: plotext in the terminal, matplotlib on export."""
