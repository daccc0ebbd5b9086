"""`divrob tui`: recipes, study, jobs, results and live trend plots in one Textual app."""
