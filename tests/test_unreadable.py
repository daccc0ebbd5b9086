"""Honest data counts (issue 13 item 5): unreadable images are counted per split, said when the
run starts, kept in its status and the store, shown by `divrob results`; beyond
`max_unreadable_fraction` the run fails naming the first files. Real JPEG files decoded by the
real decoder (corrupt ones are real truncated files), a real run directory and store."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import jpeg_bytes
from results_fixture import make_results_workspace
from typer.testing import CliRunner

from divrob.cli import app
from divrob.errors import RunError
from divrob.runs.execute import check_unreadable
from divrob.runs.rundir import RunDir
from divrob.store.db import write_connection
from divrob.store.ingest import ingest_runs
from divrob.train.data import decode_images


class Lines:
    def __init__(self):
        self.lines = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def images(tmp_path, n_good: int, n_bad: int):
    paths = []
    for i in range(n_good + n_bad):
        p = tmp_path / "img" / f"{i:03d}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(jpeg_bytes(i % 3) if i < n_good else jpeg_bytes(0)[:20])  # cut short: unreadable
        paths.append(p)
    decoded = decode_images(paths, np.zeros(len(paths), np.int64), 16, tmp_path / "cache")
    return paths, decoded


@pytest.fixture
def ws(tmp_path):
    return make_results_workspace(tmp_path / "ws", study="u", epochs=2)


def a_run(ws) -> RunDir:
    return RunDir(next(p for p in sorted(ws.runs.iterdir()) if (p / "spec.json").exists()))


def test_unreadable_images_are_counted_said_stored_and_shown(ws, tmp_path):
    rd = a_run(ws)
    paths, decoded = images(tmp_path, 199, 1)  # 0.5 %: under the default 1 %
    rep = Lines()
    check_unreadable(ws, rd, rep, "finetune train", paths, decoded)
    check_unreadable(ws, rd, rep, "finetune test", paths[:10], decode_images(paths[:10], np.zeros(10, np.int64), 16,
                                                                             tmp_path / "cache"))
    assert rep.lines == [f"run {rd.run_id}: finetune train: 1 of 200 images are unreadable (0.5%) and skipped"]
    assert "1 of 200 images are unreadable" in rd.log_path.read_text()
    assert (rd.status().unreadable, rd.status().images) == (1, 210)
    check_unreadable(ws, rd, rep, "finetune train", paths, decoded)  # a resumed run counts a split once
    assert (rd.status().unreadable, rd.status().images) == (1, 210)
    with write_connection(ws.db_path) as con:
        ingest_runs(con, [rd])
        assert con.execute("SELECT unreadable, images FROM runs WHERE run_id = ?", [rd.run_id]).fetchone() == (1, 210)
    res = CliRunner().invoke(app, ["results", "-w", str(ws.root)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert f"run {rd.run_id}: 1 of 210 images were unreadable and skipped" in res.output


def test_beyond_the_limit_the_run_fails_naming_the_first_files(ws, tmp_path):
    rd = a_run(ws)
    paths, decoded = images(tmp_path, 30, 9)
    with pytest.raises(RunError) as e:
        check_unreadable(ws, rd, Lines(), "pretrain", paths, decoded)
    msg = str(e.value)
    assert "pretrain: 9 of 39 images are unreadable (23.1% > max_unreadable_fraction = 0.01" in msg
    assert str(paths[30]) in msg and str(paths[34]) in msg and str(paths[35]) not in msg  # the first five
    assert "divrob.toml" in msg


def test_the_limit_is_a_workspace_setting(ws, tmp_path):
    cfg = ws.config_path
    cfg.write_text(cfg.read_text().replace("max_unreadable_fraction = 0.01", "max_unreadable_fraction = 0.5"))
    from divrob.workspace import open_workspace

    w = open_workspace(ws.root)
    paths, decoded = images(tmp_path, 30, 9)
    check_unreadable(w, a_run(w), Lines(), "pretrain", paths, decoded)  # 23 % < 50 %: goes on
