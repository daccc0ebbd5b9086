"""`divrob results --format tensorboard`: one event file per run from the store, read back with
TensorBoard's own reader."""

from __future__ import annotations

import json
import sys

import duckdb
import pytest
from typer.testing import CliRunner

from divrob.cli import app
from results_fixture import make_results_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_results_workspace(tmp_path_factory.mktemp("tb") / "ws", epochs=3)


@pytest.mark.slow
def test_one_event_file_per_run_with_metrics_per_epoch_and_the_spec(ws, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    runner = CliRunner()
    for _ in range(2):  # exporting again replaces, never duplicates
        res = runner.invoke(app, ["results", "--study", "fixture", "--format", "tensorboard", "--output", str(out),
                                  "-w", str(ws.root)])
        assert res.exit_code == 0, res.output
    assert "6 runs written" in res.output
    files = sorted(out.rglob("events.out.tfevents.*"))
    assert len(files) == 6 and len({f.parent for f in files}) == 6
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        run_id, spec = con.execute("SELECT r.run_id, r.spec FROM runs r JOIN study_runs s USING (run_id) "
                                   "WHERE s.distribution = 'shapes-500' AND s.arch = 'resnet18'").fetchone()
        want = con.execute("SELECT epoch, split, score FROM epochs WHERE run_id = ? AND phase = 'finetune' "
                           "ORDER BY epoch", [run_id]).fetchall()
    finally:
        con.close()
    (run_dir,) = [f.parent for f in files if f.parent.name.endswith(run_id[:8])]
    assert run_dir.relative_to(out).parts[:2] == ("fixture", "shapes-500")
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for split in ("id_test", "test", "id_val", "val"):
        got = [(e.step, e.value) for e in acc.Scalars(f"finetune/{split}/score")]
        assert got == [(ep, pytest.approx(v, abs=1e-6)) for ep, s, v in want if s == split]
    assert [e.step for e in acc.Scalars("ID/score")] == [1, 2, 3]
    assert "OOD/test/score" in tags["scalars"] and "OOD/val/score" in tags["scalars"]
    assert "OOD/id_val/score" not in tags["scalars"]
    text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\n")) == json.loads(spec)


@pytest.mark.slow
def test_the_id_score_is_on_the_task_s_own_id_split(tmp_path):
    # Camelyon17's ID split is id_val: its ID/score must be the id_val score, not id_test's
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cam = make_results_workspace(tmp_path / "ws", study="cam", downstream="wilds:camelyon17", archs=("resnet18",),
                                 epochs=2)
    out = tmp_path / "tb"
    res = CliRunner().invoke(app, ["results", "--study", "cam", "--format", "tensorboard", "--output", str(out),
                                   "-w", str(cam.root)])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(cam.db_path), read_only=True)
    try:
        rows = con.execute("SELECT run_id, epoch, split, score FROM epochs WHERE phase = 'finetune'").fetchall()
    finally:
        con.close()
    for run_dir in {f.parent for f in out.rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        run_id = next(r for r, *_ in rows if run_dir.name.endswith(r[:8]))
        want = sorted((e, v) for r, e, s, v in rows if r == run_id and s == "id_val")
        assert want and [(e.step, e.value) for e in acc.Scalars("ID/score")] == [
            (ep, pytest.approx(v, abs=1e-6)) for ep, v in want]
        assert "OOD/id_test/score" not in acc.Tags()["scalars"]


def test_missing_extra_and_bad_options_are_clear_errors(ws, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--format", "tensorboard", "-w", str(ws.root)])
    assert res.exit_code == 2 and "--output DIR" in res.output
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    res = runner.invoke(app, ["results", "--format", "tensorboard", "--output", str(tmp_path / "x"), "-w", str(ws.root)])
    assert res.exit_code == 1 and "divrob[tensorboard]" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()
