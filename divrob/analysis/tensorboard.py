"""divrob's numbers in TensorBoard: one event file per run, written from the store.

Each run gets a directory `<study>/<distribution>/<arch>-seed<seed>-<run id[:8]>` (runs of no
study: `runs/<run id>`) holding one event file with, per epoch (the step), every recorded metric
of every split as `<phase>/<split>/<metric>`, the fine-tuning ID and OOD scores (the task's own
metric) as `ID/score` (on the task's own ID split: Camelyon17's is id_val) and
`OOD/<split>/score`, and the spec (and provenance, when recorded) as
text. Exporting again replaces a run's event file.

Needs the `tensorboard` extra (`pip install 'divrob[tensorboard]'`); it writes through
`torch.utils.tensorboard`, so this one export loads torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from divrob.analysis.studies import task_facts
from divrob.errors import DivrobError
from divrob.store.db import read_connection
from divrob.store.ingest import METRIC_COLUMNS
from divrob.store.queries import ID_SPLIT, NOT_OOD
from divrob.workspace import Workspace

EXTRA = "pip install 'divrob[tensorboard]'"


class ExportError(DivrobError):
    exit_code = 2


def _writer_class():
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs it, with a less clear error
    except ImportError:
        raise DivrobError(f"--format tensorboard needs the tensorboard package: {EXTRA}") from None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(part)) or "_"


def export_tensorboard(ws: Workspace, out_dir: Path, study: str | None = None) -> list[Path]:
    """Write one event file per run of `study` (None: every run in the store); returns their directories."""
    SummaryWriter = _writer_class()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--output {out_dir} is a file; give a directory for the event files")
    with read_connection(ws.db_path) as con:
        places = con.execute(
            "SELECT run_id, study, distribution, arch, seed FROM study_runs WHERE (? IS NULL OR study = ?) "
            "ORDER BY study, distribution, arch, seed, run_id", [study, study]).fetchall()
        where = "WHERE run_id IN (SELECT run_id FROM study_runs WHERE study = ?)" if study else ""
        runs = con.execute(f"SELECT run_id, spec, downstream FROM runs {where} ORDER BY run_id",
                           [study] if study else []).fetchall()
        id_splits = task_facts(con, study).id_splits
        prov = dict(con.execute(f"SELECT run_id, data FROM provenance {where}", [study] if study else []).fetchall())
        cols = ", ".join(METRIC_COLUMNS)
        epochs = con.execute(f"SELECT run_id, phase, epoch, split, {cols} FROM epochs {where} "
                             "ORDER BY run_id, phase, epoch, split", [study] if study else []).fetchall()
    if study and not runs:
        raise ExportError(f"study {study!r} has no runs in the store yet")
    place: dict[str, Path] = {}
    for run_id, s, dist, arch, seed in places:
        place.setdefault(run_id, Path(_safe(s)) / _safe(dist) / f"{_safe(arch)}-seed{seed}-{run_id[:8]}")
    by_run: dict[str, list] = {}
    for row in epochs:
        by_run.setdefault(row[0], []).append(row)
    written = []
    for run_id, spec, task in runs:
        id_split = id_splits.get(task, ID_SPLIT)
        log_dir = out_dir / place.get(run_id, Path("runs") / _safe(run_id))
        log_dir.mkdir(parents=True, exist_ok=True)
        for old in log_dir.glob("events.out.tfevents.*"):
            old.unlink()
        w = SummaryWriter(log_dir=str(log_dir))
        try:
            w.add_text("spec", "```\n" + json.dumps(json.loads(spec), indent=2, sort_keys=True) + "\n```", 0)
            if run_id in prov:
                w.add_text("provenance", "```\n" + json.dumps(json.loads(prov[run_id]), indent=2, sort_keys=True)
                           + "\n```", 0)
            for _, phase, epoch, split, *values in by_run.get(run_id, []):
                for name, value in zip(METRIC_COLUMNS, values):
                    if value is not None and name != "n":
                        w.add_scalar(f"{phase}/{split}/{name}", float(value), int(epoch))
                score = values[METRIC_COLUMNS.index("score")]
                if phase == "finetune" and score is not None:
                    if split == id_split:
                        w.add_scalar("ID/score", float(score), int(epoch))
                    elif split not in NOT_OOD:
                        w.add_scalar(f"OOD/{split}/score", float(score), int(epoch))
        finally:
            w.close()
        written.append(log_dir)
    return written
