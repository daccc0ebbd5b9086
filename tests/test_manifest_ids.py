"""Manifest content ids (hashlib over canonical bytes) and the migration of legacy workspaces whose
ids came from pandas.util.hash_pandas_object: manifests, run directories and store rows re-keyed,
finished runs found by the next plan, every step idempotent."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
import struct

import pandas as pd
import pytest

from divrob.recipes.manifest import ID_SCHEME, REKEYED_FILE, build_manifest, load_manifest, manifest_id
from divrob.recipes.schema import Distribution
from divrob.workspace import init_workspace, open_workspace

from conftest import jpeg_bytes

GOLDEN_ROWS = {
    "source": ["imagenet", "imagenet", "folder:pets"],
    "path": ["n01440764/a.JPEG", "n01443537/b.JPEG", "cat/ü 1.jpg"],
    "label": [0, 1, 2],
    "label_name": ["n01440764", "n01443537", "cat"],
}
GOLDEN_ID = "621988eab3dbe652"


def test_golden_id_is_a_literal():
    """If this fails, every manifest id and so every run id of every workspace changes: that needs
    a new ID_SCHEME and a migration, never an edit of this literal."""
    assert manifest_id(pd.DataFrame(GOLDEN_ROWS)) == GOLDEN_ID


def test_id_is_the_documented_encoding_written_out_by_hand():
    buf = b"divrob-manifest\0v1\0" + struct.pack("<Q", 3)
    for col in ("source", "path", "label", "label_name"):
        buf += col.encode() + b"\0"
        if col == "label":
            buf += b"".join(struct.pack("<q", v) for v in GOLDEN_ROWS[col])
        else:
            enc = [v.encode("utf-8") for v in GOLDEN_ROWS[col]]
            buf += b"".join(struct.pack("<I", len(e)) for e in enc) + b"".join(enc)
    assert hashlib.sha256(buf).hexdigest()[:16] == GOLDEN_ID


def test_id_depends_on_values_only():
    rows = pd.DataFrame(GOLDEN_ROWS)
    same = [
        rows.astype({"label": "int32"}),
        rows.astype({"source": "category", "label_name": "category"}),
        rows.set_index(pd.Index([7, 8, 9])),
        rows.assign(extra=1)[["extra", "label_name", "label", "path", "source"]],
    ]
    assert all(manifest_id(r) == GOLDEN_ID for r in same)
    different = [
        rows.iloc[::-1],  # row order is content (it is the manifest's order)
        rows.assign(label=[0, 1, 3]),
        rows.assign(path=["n01440764/a.JPEG", "n01443537/b.JPEG", "cat/u 1.jpg"]),
        # length prefixes keep field boundaries: moving a character between fields changes the id
        rows.assign(source=["imagene", "imagenet", "folder:pets"], path=["tn01440764/a.JPEG", *GOLDEN_ROWS["path"][1:]]),
        rows.iloc[:2],
    ]
    assert len({manifest_id(r) for r in different} | {GOLDEN_ID}) == len(different) + 1


# --- migration of a legacy workspace -----------------------------------------------------------

COUNTS = {"ant": 6, "bee": 5, "cat": 7}


def _legacy_id(rows: pd.DataFrame) -> str:
    """The id divrob gave manifests before content ids (kept here only to make legacy workspaces)."""
    h = pd.util.hash_pandas_object(rows[["source", "path", "label", "label_name"]], index=False).to_numpy()
    return hashlib.sha256(h.tobytes() + str(len(rows)).encode()).hexdigest()[:16]


class Log:
    def __init__(self):
        self.lines: list[str] = []

    def task(self, description, total=None):
        from divrob.progress import SILENT

        return SILENT.task(description, total)

    def log(self, message):
        self.lines.append(message)


RECIPE = """
[study]
name = "legacy"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0, 1]
pretrain = { epochs = 1, image_size = 16 }
finetune = { epochs = 1, image_size = 16 }

[[distribution]]
name = "pets-{total}"
source = "folder:pets"
total = [9, 12]
"""


@pytest.fixture()
def legacy(tmp_path):
    """A workspace as an older divrob left it: two manifests under legacy ids, three finished runs
    (one of them written under an older spec version) and their store rows, and a queued job."""
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study
    from divrob.runs.rundir import RunDir
    from divrob.runs.spec import SPEC_VERSION
    from divrob.store.db import write_connection
    from divrob.store.ingest import ingest_run, record_manifest, record_study_run

    root = tmp_path / "pets"
    for k, (name, n) in enumerate(COUNTS.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i:02d}.jpg").write_bytes(jpeg_bytes(k))
    ws = init_workspace(tmp_path / "ws")
    ws.config_path.write_text(ws.config_path.read_text().replace("# mydata = \"/data/mydata\"", f'pets = "{root}"'))
    ws = open_workspace(ws.root)
    recipe_path = tmp_path / "legacy.toml"
    recipe_path.write_text(RECIPE)
    recipe = load_recipe(recipe_path)

    plan = plan_study(ws, recipe)  # content ids; turned into legacy ones below
    legacy_of = {}
    for info in plan.manifests.values():
        rows = load_manifest(ws, info.manifest_id)
        old = _legacy_id(rows)
        legacy_of[info.manifest_id] = old
        (ws.manifests / f"{info.manifest_id}.parquet").rename(ws.manifests / f"{old}.parquet")
        meta = json.loads((ws.manifests / f"{info.manifest_id}.json").read_text())
        meta.pop("id_scheme")
        (ws.manifests / f"{old}.json").write_text(json.dumps(meta | {"manifest_id": old}))
        (ws.manifests / f"{info.manifest_id}.json").unlink()

    runs = {}
    with write_connection(ws.db_path) as con:
        for pr in plan.runs:
            spec = pr.spec.__class__(**{**pr.spec.__dict__, "manifest_id": legacy_of[pr.spec.manifest_id]})
            rd = RunDir.for_spec(ws.runs, spec)
            if pr.spec.seed == 1 and pr.distribution == "pets-12":  # a run that never started
                runs[(pr.distribution, pr.spec.seed)] = (rd.run_id, SPEC_VERSION, False)
                con.execute("INSERT INTO jobs (job_id, kind, study, deps, params, state) VALUES (?, 'run', 'legacy', ?, "
                            "'{}', 'queued')", [rd.run_id, json.dumps([f"manifest-{spec.manifest_id}"])])
                continue
            version = SPEC_VERSION
            if pr.spec.seed == 1:  # written by an older divrob under spec version 0
                version = 0
                stored = json.loads(rd.spec_path.read_text())
                old_id = __import__("divrob.fileio", fromlist=["short_hash"]).short_hash(
                    spec.identity() | {"version": 0})
                rd.path.rename(ws.runs / old_id)
                rd = RunDir(ws.runs / old_id)
                rd.spec_path.write_text(json.dumps(stored | {"version": 0, "run_id": old_id}))
            rd.append_epoch("finetune", 1, {"id_test": {"f1_macro": 0.5}, "test": {"f1_macro": 0.25}})
            rd.set_status("finished")
            ingest_run(con, rd)
            # the spec as it was planned, under the run's own id (a version-0 spec no longer loads)
            planned_spec = SimpleNamespace(run_id=rd.run_id, arch=spec.arch, seed=spec.seed,
                                           manifest_id=spec.manifest_id)
            record_study_run(con, "legacy", SimpleNamespace(distribution=pr.distribution, source=pr.source,
                                                            sweep=pr.sweep, spec=planned_spec))
            runs[(pr.distribution, pr.spec.seed)] = (rd.run_id, version, True)
        for name, info in plan.manifests.items():
            old = legacy_of[info.manifest_id]
            record_manifest(con, info.__class__(**{**info.__dict__, "manifest_id": old,
                                                   "path": ws.manifests / f"{old}.parquet"}), "folder:pets")
    return ws, recipe, legacy_of, runs


def test_plan_re_keys_a_legacy_workspace_and_finds_its_finished_runs(legacy):
    from divrob.runs.grid import plan_study
    from divrob.runs.rundir import RunDir
    from divrob.runs.spec import SPEC_VERSION

    ws, recipe, legacy_of, runs = legacy
    log = Log()
    plan = plan_study(ws, recipe, log)  # migrates on its own, before building anything
    assert any("re-keyed 2 manifest(s) and 4 run(s)" in line for line in log.lines), log.lines

    # manifests under their content ids, with the legacy id recorded; no file left under an old id
    for new, old in legacy_of.items():
        meta = json.loads((ws.manifests / f"{new}.json").read_text())
        assert (meta["manifest_id"], meta["id_scheme"], meta["legacy_id"]) == (new, ID_SCHEME, old)
        assert not (ws.manifests / f"{old}.parquet").exists() and not (ws.manifests / f"{old}.json").exists()
        assert load_manifest(ws, old).equals(load_manifest(ws, new))  # a stale job's legacy id still loads
    journal = json.loads((ws.manifests / REKEYED_FILE).read_text())
    assert journal["manifests"] == {old: new for new, old in legacy_of.items()}

    # the plan's runs at the current spec version are the old runs, renamed and finished: not redone
    for pr in plan.runs:
        old_id, version, finished = runs[(pr.distribution, pr.spec.seed)]
        new_id = journal["runs"][old_id]
        rd = RunDir(ws.runs / new_id)
        spec = json.loads(rd.spec_path.read_text())
        assert spec["version"] == version and spec["rekeyed_from"] == old_id and spec["run_id"] == new_id
        assert spec["manifest_id"] in legacy_of and not (ws.runs / old_id).exists()
        if version == SPEC_VERSION:
            assert pr.spec.run_id == new_id and rd.is_finished == finished
        else:  # an older spec version keeps its version: a different run, never reused
            assert pr.spec.run_id != new_id and rd.is_finished

    # a second pass finds nothing to do
    log = Log()
    assert [pr.spec.run_id for pr in plan_study(ws, recipe, log).runs] == [pr.spec.run_id for pr in plan.runs]
    assert not any("re-keyed" in line for line in log.lines)


def test_store_rows_follow_and_a_queued_job_keeps_its_dependency(legacy):
    from divrob.dispatch.inline import record_plan
    from divrob.runs.grid import plan_study
    from divrob.store.db import read_connection

    ws, recipe, legacy_of, runs = legacy
    plan = plan_study(ws, recipe)
    record_plan(ws, plan)
    record_plan(ws, plan)  # idempotent
    journal = json.loads((ws.manifests / REKEYED_FILE).read_text())
    with read_connection(ws.db_path) as con:
        run_ids = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        assert run_ids >= {journal["runs"][old] for old, _, done in runs.values() if done}
        assert not run_ids & set(journal["runs"])
        assert {r[0] for r in con.execute("SELECT manifest_id FROM manifests").fetchall()} == set(legacy_of)
        assert {r[0] for r in con.execute("SELECT DISTINCT run_id FROM epochs").fetchall()} <= set(journal["runs"].values())
        assert con.execute("SELECT count(*) FROM epochs").fetchall()[0][0] == 3 * 2  # 3 finished runs x 2 splits
        study_runs = con.execute("SELECT run_id, manifest_id FROM study_runs WHERE study = 'legacy'").fetchall()
        assert study_runs and all(m in legacy_of for _, m in study_runs)
        assert {r for r, _ in study_runs} == {pr.spec.run_id for pr in plan.runs}
        (queued_old, _, _), = [v for v in runs.values() if not v[2]]
        job_id, deps = con.execute("SELECT job_id, deps FROM jobs WHERE kind = 'run'").fetchall()[0]
        assert job_id == journal["runs"][queued_old]
        new_mid = json.loads((ws.runs / job_id / "spec.json").read_text())["manifest_id"]
        assert new_mid in legacy_of and json.loads(deps) == [f"manifest-{new_mid}"]


def test_an_interrupted_pass_is_finished_by_the_next(legacy):
    """Killed after the spec was rewritten but before the directory was renamed: the next pass
    renames it; a running run is left alone, with a log line saying why."""
    from divrob.runs.migrate import migrate_legacy_ids

    ws, recipe, legacy_of, runs = legacy
    old_id, _, _ = runs[("pets-9", 0)]
    busy_id, _, _ = runs[("pets-12", 0)]
    (ws.runs / busy_id / "status.json").write_text(json.dumps({"state": "running"}))
    # simulate the interruption: do the spec rewrite of the first run by hand
    first = migrate_legacy_ids(ws)
    new_id = first.runs[old_id]
    (ws.runs / new_id).rename(ws.runs / old_id)
    assert f"run {busy_id}" in first.left
    log = Log()
    second = migrate_legacy_ids(ws, log)
    assert second.runs == {old_id: new_id} and (ws.runs / new_id / "spec.json").exists()
    assert any("it is running" in line for line in log.lines)
    (ws.runs / busy_id / "status.json").write_text(json.dumps({"state": "finished"}))
    third = migrate_legacy_ids(ws)
    assert busy_id in third.runs and not third.left


def test_a_fresh_workspace_is_not_touched(tmp_path):
    from divrob.runs.migrate import migrate_legacy_ids

    root = tmp_path / "pets"
    (root / "ant").mkdir(parents=True)
    (root / "ant" / "0.jpg").write_bytes(jpeg_bytes(0))
    ws = init_workspace(tmp_path / "ws")
    ws.config_path.write_text(ws.config_path.read_text().replace("# mydata = \"/data/mydata\"", f'pets = "{root}"'))
    ws = open_workspace(ws.root)
    info = build_manifest(ws, Distribution(name="d", source="folder:pets"))
    assert json.loads((ws.manifests / f"{info.manifest_id}.json").read_text())["id_scheme"] == ID_SCHEME
    assert not migrate_legacy_ids(ws) and not (ws.manifests / REKEYED_FILE).exists()
