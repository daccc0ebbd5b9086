"""Downstream tasks: fine-tuning sets with a natural distribution shift, one module per task,
one interface (`task.TaskKind` to name and configure one, `task.DownstreamTask` once loaded).

    a recipe writes                                        module      score
    iwildcam (= wilds:iwildcam), wilds:fmow,               wilds       the dataset's eval()
      wilds:camelyon17, wilds:rxrx1
    domainnet:<domain>, or { task = "domainnet",           domainnet   accuracy
      id_domain = ..., ood_domains = [...] }
    folder:<name>, or { task = "folder", name = ...,       folder      accuracy or macro-F1
      metric = "f1_macro" }
    camtrap-sim                                            camtrap     macro-F1

A parsed name is a `TaskRef`. A run records its `label` (canonical: `"domainnet:infograph"`)
and its `spec_options` (what the label does not spell: `{"ood_domains": [...]}`), and
`task_of_spec` turns the two back into the same TaskRef. Nothing here imports numpy: recipes and
`divrob results` name tasks without loading one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from divrob.downstream.task import DownstreamTask, Split, TaskKind
from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter

__all__ = ["DownstreamTask", "Split", "TaskKind", "TaskRef", "get_task", "parse_task", "task_of_spec",
           "is_task", "kinds", "task_names"]

ALIASES = {"iwildcam": "wilds:iwildcam"}


@lru_cache(maxsize=None)
def kinds() -> dict[str, TaskKind]:
    from divrob.downstream.camtrap import CamtrapKind
    from divrob.downstream.domainnet import DomainNetKind
    from divrob.downstream.folder import FolderKind
    from divrob.downstream.wilds import KINDS as WILDS

    out = {k.name: k for k in WILDS}
    for kind in (DomainNetKind(), FolderKind(), CamtrapKind()):
        out[kind.name] = kind
    return out


def task_names() -> list[str]:
    """What a recipe's `downstream` may say, aliases first (`divrob models`, `--help`)."""
    return [*ALIASES, *kinds()]


@dataclass(frozen=True)
class TaskRef:
    """A task named with its options (validated, defaults filled in)."""

    kind: TaskKind
    options: BaseModel

    @property
    def label(self) -> str:
        return self.kind.label(self.options)

    @property
    def spec_options(self) -> dict[str, Any]:
        return self.kind.spec_options(self.options)

    @property
    def metric(self) -> tuple[str, str]:
        """(the score's key, its words for titles), e.g. ("acc_worst_region", "worst-region accuracy")."""
        return self.kind.metric_of(self.options)

    @property
    def id_split(self) -> str:
        return self.kind.id_split(self.options)

    def finetune_defaults(self) -> dict[str, Any]:
        return self.kind.finetune_defaults(self.options)

    def load(self, ws, reporter: Reporter = SILENT) -> DownstreamTask:
        return self.kind.load(ws, self.options, reporter)


def parse_task(value: str | dict) -> TaskRef:
    """A recipe's `downstream` value (a name, `"<task>:<value>"`, or a table with `task` and the
    task's options) as a TaskRef. ValueError says which key is wrong and what to write."""
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, dict):
        options = dict(value)
        name = options.pop("task", None)
        if not isinstance(name, str):
            raise ValueError(f"task: a downstream table needs task = \"NAME\"; choose from {', '.join(task_names())}")
    else:
        raise ValueError(f"a task name or a table {{ task = \"NAME\", ... }}, not {value!r}")
    known = kinds()
    name = ALIASES.get(name, name)
    kind = known.get(name)
    if kind is None and ":" in name:
        prefix, given = name.split(":", 1)
        kind = known.get(prefix)
        if kind is None or kind.shorthand is None:
            kind = None
        elif kind.shorthand in options:
            raise ValueError(f"{kind.shorthand}: given twice, in {name!r} and as a key")
        else:
            options[kind.shorthand] = given
    if kind is None:
        raise ValueError(f"unknown downstream task {name!r}; choose from {', '.join(task_names())} "
                         f"(`divrob models` lists them)")
    try:
        return TaskRef(kind, kind.Options.model_validate(options))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            fields = ", ".join(kind.Options.model_fields) or "none"
            msg = f"not an option of {kind.name!r} (its options: {fields})"
        raise ValueError(f"{where}: {msg}" if where else msg) from None


def task_of_spec(label: str, options: dict[str, Any] | None = None) -> TaskRef:
    """The TaskRef a run's spec names (its `downstream` label and `downstream_options`)."""
    try:
        ref = parse_task(label)
        return parse_task({"task": ref.kind.name, **ref.options.model_dump(), **(options or {})})
    except ValueError as e:
        raise SourceError(f"the run's downstream task {label!r} ({options or {}}) is not one this divrob "
                          f"knows: {e}") from None


def is_task(name: str) -> bool:
    try:
        parse_task(name)
    except ValueError:
        return False
    return True


def get_task(ws, task: TaskRef | str | dict, reporter: Reporter = SILENT) -> DownstreamTask:
    """Load a task (a TaskRef, or a name or table as a recipe writes it)."""
    if not isinstance(task, TaskRef):
        try:
            task = parse_task(task)
        except ValueError as e:
            raise SourceError(f"downstream {task!r}: {e}") from None
    return task.load(ws, reporter)
