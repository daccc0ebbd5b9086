"""Executors run a study's jobs: inline (in this process, one after another), local (slot worker
processes under a scheduler that can detach), slurm and submitit-local (through submitit).

launch.py is the one way to launch a study (the CLI and the TUI call it); study.py queues a
plan's jobs in the store; generation.py runs the generate jobs a study needs first; manager.py
serves a queue (local.py and slurm.py are its backends; scheduler.py runs it detached);
worker.py and kinds.py are the job side; control.py is what `divrob jobs` does from any shell.
"""
