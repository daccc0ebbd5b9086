"""The one interface every downstream task gives: a `TaskKind` (what a recipe can name, its
options, metric and default fine-tuning recipe; light, no numpy) and, once loaded, a
`DownstreamTask` (image paths and labels per split, the ID and OOD splits, and the scorer of the
task's own metric)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter

if TYPE_CHECKING:  # loading a task needs numpy; naming one (recipes, `divrob results`) must not
    import numpy as np

    from divrob.workspace import Workspace

ID_TEST = "id_test"


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Split:
    paths: list[Path]
    labels: np.ndarray


# (split, predictions, labels, rows of the split they belong to) -> {"score": ..., more numbers}
Scorer = Callable[[str, "np.ndarray", "np.ndarray", "np.ndarray"], dict[str, Any]]


@dataclass(frozen=True)
class DownstreamTask:
    """A loaded task. `score` adds the task's own metric ("score", plus whatever else the task's
    reference evaluation reports) to the generic ones the training loop computes for every split."""

    name: str  # the task's label, e.g. "wilds:fmow", "domainnet:infograph"
    num_classes: int
    splits: dict[str, Split]  # "train" and every evaluation split
    id_split: str
    ood_splits: tuple[str, ...]
    metric: str  # what "score" measures, e.g. "acc_worst_region"
    scorer: Scorer

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise SourceError(f"downstream task {self.name!r} has no split {name!r}; "
                              f"it has {', '.join(self.splits)}")
        return self.splits[name]

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in self.splits if s != "train"]

    def score(self, split: str, preds, labels, rows) -> dict[str, Any]:
        return self.scorer(split, preds, labels, rows)


class TaskKind:
    """One kind of downstream task. A recipe names it by `name` (and options); `shorthand`, when
    set, is the option that `"<name>:<value>"` fills (`"domainnet:infograph"`)."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `divrob models`
    Options: ClassVar[type[BaseModel]] = NoOptions
    shorthand: ClassVar[str | None] = None
    metric: ClassVar[tuple[str, str]] = ("acc", "accuracy")  # (key, words for titles)

    def label(self, o: BaseModel) -> str:
        """The canonical name a run records (and `--where downstream=...` matches)."""
        return self.name

    def spec_options(self, o: BaseModel) -> dict[str, Any]:
        """The options the label does not spell, which a run id needs too (JSON values)."""
        return {}

    def metric_of(self, o: BaseModel) -> tuple[str, str]:
        return self.metric

    def id_split(self, o: BaseModel) -> str:
        return ID_TEST

    def finetune_defaults(self, o: BaseModel) -> dict[str, Any]:
        """Fine-tuning settings that differ from divrob's base recipe (WILDS iWildCam's)."""
        return {}

    def load(self, ws: Workspace, o: BaseModel, reporter: Reporter = SILENT) -> DownstreamTask:
        raise NotImplementedError


def metric_scorer(metric: str) -> Scorer:
    """The scorer of a task whose metric is accuracy ("acc") or macro-F1 ("f1_macro", over the
    classes present in the split, as WILDS scores iWildCam)."""

    def score(split, preds, labels, rows) -> dict[str, Any]:
        import numpy as np

        labels, preds = np.asarray(labels), np.asarray(preds)
        if len(labels) == 0:
            return {}
        if metric == "acc":
            return {"score": float(np.mean(preds == labels))}
        from sklearn.metrics import f1_score

        return {"score": float(f1_score(labels, preds, average="macro", labels=np.unique(labels)))}

    if metric not in ("acc", "f1_macro"):
        raise ValueError(f"unknown metric {metric!r}")
    return score


def task_root(ws: Workspace, key: str, task: str, holds: str) -> Path:
    """A configured dataset root, or an error that says which line of divrob.toml to write."""
    root = ws.dataset_root(key)
    if root is None:
        raise SourceError(f"downstream {task!r}: set `{key} = \"/path/to/{key}\"` under [datasets] in "
                          f"{ws.config_path} (the directory holding {holds})")
    if not root.is_dir():
        raise SourceError(f"downstream {task!r}: {root} (`{key}` in {ws.config_path}) is not a directory; "
                          f"expected the directory holding {holds}")
    return root
