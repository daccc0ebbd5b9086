"""Executors run RunSpecs: inline (in this process) now; local GPU slots and SLURM later."""
