"""Shared by the TUI tests (no tests here): a fixture workspace with results, recipes (one
broken) and jobs in every state, an app factory with a fixed clock, and `settle`."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from divrob.dispatch.jobs import Job, upsert_jobs
from divrob.fileio import write_json_atomic
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.store.db import write_connection
from divrob.train.config import finetune_config, pretrain_config

NOW = 1_750_000_000.0  # the fixed clock of the Jobs screen: elapsed and ETA never change

GOOD_RECIPE = """\
[study]
name = "fixture"
downstream = "camtrap-sim"
archs = ["resnet18", "resnet34"]
seeds = [0]
finetune = { epochs = 5, image_size = 32 }

[[distribution]]
name = "scratch"
"""

BROKEN_RECIPE = """\
[study]
name = "broken"
downstream = "camtrap-sim"
archs = ["resnet18"]

[[distribution]]
name = "shapes"
source = "demo-shapes"
totl = 500
"""

RUNNING = "f" * 8 + "0123456789abcdef"
QUEUED = "e" * 8 + "0123456789abcdef"
FAILED = "d" * 8 + "0123456789abcdef"


def make_tui_workspace(root: Path):
    from results_fixture import make_results_workspace

    ws = make_results_workspace(root)
    (ws.root / "recipes").mkdir(exist_ok=True)
    (ws.root / "recipes" / "fixture.toml").write_text(GOOD_RECIPE)
    (ws.root / "recipes" / "broken.toml").write_text(BROKEN_RECIPE)
    add_jobs(ws)
    return ws


def add_jobs(ws) -> None:
    """A running run (its progress written as a run writes it, and a log), a queued one and a
    failed one. The run directories have fixed ids (stable snapshots) and real specs: 4
    pre-training and 6 fine-tuning epochs."""
    spec = RunSpec(arch="resnet18", seed=1, downstream="camtrap-sim", manifest_id="m" * 16, pretrain_classes=10,
                   pretrain=pretrain_config("resnet18", {"epochs": 4}), finetune=finetune_config("resnet18", {"epochs": 6}))
    for job_id, state in ((RUNNING, "running"), (FAILED, "failed")):
        rd = RunDir(ws.runs / job_id)
        rd.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(rd.spec_path, spec.to_dict())
        if state == "running":  # half-way through fine-tuning epoch 2
            rd.set_progress(phase="finetune", epoch=2, epochs=6, step=25, steps_per_epoch=50, images_per_s=812.5)
        else:
            rd.set_status("failed", reason="CUDA out of memory")
        rd.log_path.write_text("".join(f"2025-01-01 00:00:0{i} epoch {i} line\n" for i in range(5)))
    jobs = [
        Job(RUNNING, "run", "fixture", "shapes-500 / resnet18 / seed 1", executor="local", state="running",
            slot="gpu0", queued=NOW - 900, started=NOW - 600),
        Job(QUEUED, "run", "fixture", "shapes-2000 / resnet18 / seed 1", executor="local", state="queued",
            queued=NOW - 800),
        Job(FAILED, "run", "fixture", "scratch / resnet34 / seed 1", executor="local", state="failed",
            reason="CUDA out of memory", queued=NOW - 700, started=NOW - 650, ended=NOW - 300),
    ]
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, jobs)


def make_app(ws, start: str = "recipes", **kw):
    from divrob.tui.adapter import DivrobAdapter
    from divrob.tui.app import DivrobApp

    return DivrobApp(adapter=DivrobAdapter(ws.root, clock=lambda: NOW), start=start, refresh_s=3600, **kw)


async def settle(pilot, rounds: int = 20) -> None:
    """Wait until no worker runs and every message they posted is handled (workers may start
    workers: a loaded study starts a fit), without sleeping for a fixed time."""
    app = pilot.app
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                break
    # DataTables size their columns when their message queue is idle; on a busy machine a frame
    # can be taken before that, so wait until no table has pending rows or widths.
    for _ in range(rounds):
        if not any(_table_pending(t) for t in app.screen.query(DataTable)):
            break
        await pilot.pause()
    await pilot.pause()


def _table_pending(table) -> bool:
    # private DataTable state (textual 8): the only signal that its layout is not final yet
    return bool(getattr(table, "_require_update_dimensions", False) or getattr(table, "_updated_cells", None)
                or getattr(table, "_new_rows", None))
