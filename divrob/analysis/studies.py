"""Which study a command reads, and the results table of one: light code (no numpy, no pandas),
so `divrob results` on a study of 100,000 runs answers in well under a second."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from divrob.analysis import ALL_OOD
from divrob.errors import DivrobError, UsageError
from divrob.store.db import read_connection
from divrob.store.queries import (
    ID_SPLIT,
    NOT_OOD,
    eval_splits,
    last_epoch_page,
    last_epoch_rows,
    studies,
    study_tasks,
)
from divrob.workspace import Workspace

UNKNOWN_METRIC = "score"  # the words for a task this divrob does not know (e.g. a test's "noop")


def resolve_study(ws: Workspace, study_or_recipe: str) -> str:
    """A study name, given either the name or the path of its recipe."""
    p = Path(study_or_recipe)
    if p.suffix == ".toml" and p.exists():
        from divrob.recipes.load import load_recipe

        return load_recipe(p).study.name
    return study_or_recipe


def only_study(ws: Workspace) -> str:
    """The study of a workspace that holds exactly one; otherwise say which to choose."""
    with read_connection(ws.db_path) as con:
        known = studies(con)
    if len(known) == 1:
        return known[0]
    if not known:
        raise DivrobError(f"{ws.db_path} has no results yet; run a study first (`divrob study run RECIPE`)")
    raise DivrobError(f"this workspace holds several studies; choose one with --study: {', '.join(known)}")


def check_study(con, ws: Workspace, study: str | None) -> None:
    """Raise, naming the studies there are, when `study` is not in the store (None: all)."""
    if study is None:
        return
    known = studies(con)
    if study not in known:
        hint = f"studies in this workspace: {', '.join(known)}" if known else "this workspace has no results yet"
        raise UsageError(f"no study named {study!r} in {ws.db_path}; {hint}")


@dataclass(frozen=True)
class TaskFacts:
    """What the store's rows mean, from the tasks of a study's runs (divrob.downstream)."""

    id_splits: dict[str, str]  # task label -> its ID test split, where that is not id_test
    words: dict[tuple[str, str | None], str]  # (task label, options JSON) -> its metric in words

    @property
    def metric(self) -> str:
        """The score's name for titles: "macro-F1", "accuracy", or each, " / "-joined."""
        return " / ".join(sorted(set(self.words.values()))) or UNKNOWN_METRIC


def task_facts(con, study: str | None) -> TaskFacts:
    from divrob.downstream import task_of_spec
    from divrob.errors import SourceError

    id_splits, words = {}, {}
    for label, options in study_tasks(con, study):
        try:
            task = task_of_spec(label, json.loads(options) if options else {})
        except (SourceError, json.JSONDecodeError):
            words[(label, options)] = UNKNOWN_METRIC
            continue
        words[(label, options)] = task.metric[1]
        if task.id_split != ID_SPLIT:
            id_splits[label] = task.id_split
    return TaskFacts(id_splits, words)


def choose_ood(con, study: str | None, ood: str | None) -> str | list[str]:
    """The OOD split to read: the one asked for (checked against the study's), `ALL_OOD` for every
    one, or by default WILDS's `test`, else the study's only OOD split."""
    where = f"study {study!r}" if study else "these studies"
    splits = [s for s in eval_splits(con, study) if s not in NOT_OOD]
    if ood == ALL_OOD:
        return splits or ["test"]
    if ood is None:
        if "test" in splits or not splits:
            return "test"
        if len(splits) == 1:
            return splits[0]
        raise DivrobError(f"{where} has several OOD splits ({', '.join(splits)}): choose one with --ood SPLIT, "
                          f"or draw one panel each with --facet ood")
    if splits and ood not in splits:
        raise UsageError(f"--ood {ood!r}: {where} has no such OOD split; choose from {', '.join(splits)} "
                          f"or {ALL_OOD}")
    return ood


def results_page(ws: Workspace, study: str, limit: int) -> tuple[list[tuple], int, str, str]:
    """The first `limit` runs of a study at their last epoch (`store.queries.last_epoch_page`),
    how many runs it has, the OOD split read and the metric's name."""
    with read_connection(ws.db_path) as con:
        check_study(con, ws, study)
        split = choose_ood(con, study, None)
        facts = task_facts(con, study)
        return (*last_epoch_page(con, study, limit, split, facts.id_splits), split, facts.metric)


def results_table(ws: Workspace, study: str | None, limit: int,
                  ood: str | None = None) -> tuple[str, list[tuple], int, str, str]:
    """`store.queries.last_epoch_rows` of a study (None: every study), the OOD split read and
    the metric's name."""
    with read_connection(ws.db_path) as con:
        check_study(con, ws, study)
        split = choose_ood(con, study, ood)
        if not isinstance(split, str):
            raise UsageError(f"--ood {ALL_OOD}: the results table shows one OOD split; choose one with --ood "
                              f"({', '.join(split)}), or export every split with --format csv --ood {ALL_OOD}")
        facts = task_facts(con, study)
        return (*last_epoch_rows(con, study, limit, split, facts.id_splits), split, facts.metric)
