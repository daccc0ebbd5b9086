"""A shift of the user's own: a folder named under `[datasets.folders]` in divrob.toml holding

    train/<class>/<image>      what the model is fine-tuned on
    id_test/<class>/<image>    the in-distribution test split
    ood_<name>/<class>/<image> one or more OOD test splits (split `ood_<name>`)

Class ids follow the sorted class folders of train/; a test split may lack a class but may not
add one. The metric is chosen: `acc` (accuracy) or `f1_macro` (macro-F1 over the classes
present in the split, as WILDS scores iWildCam).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from divrob.downstream.task import ID_TEST, DownstreamTask, Split, TaskKind, metric_scorer
from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter

LAYOUT = "train/, id_test/ and one or more ood_<name>/ folders, each an ImageFolder <class>/<image>"
METRIC_WORDS = {"acc": "accuracy", "f1_macro": "macro-F1"}


class FolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the folder's name under [datasets.folders] in divrob.toml")
    metric: Literal["acc", "f1_macro"] = Field("acc", description="acc (accuracy) or f1_macro (macro-F1)")


class FolderKind(TaskKind):
    name = "folder"
    summary = f"your own shift: {LAYOUT}; metric acc or f1_macro"
    Options = FolderOptions
    shorthand = "name"

    def label(self, o: FolderOptions) -> str:
        return f"folder:{o.name}"

    def spec_options(self, o: FolderOptions) -> dict[str, Any]:
        return {"metric": o.metric}

    def metric_of(self, o: FolderOptions) -> tuple[str, str]:
        return o.metric, METRIC_WORDS[o.metric]

    def finetune_defaults(self, o: FolderOptions) -> dict[str, Any]:
        return {"image_size": 224}

    def load(self, ws, o: FolderOptions, reporter: Reporter = SILENT) -> DownstreamTask:
        import numpy as np

        from divrob.sources.index import FOLDER_LAYOUT, list_class_dirs, scan_image_folder

        label = self.label(o)
        root = ws.folder_root(o.name)
        if root is None:
            raise SourceError(f"downstream {label!r}: no folder named {o.name!r} in {ws.config_path}; add "
                              f"`{o.name} = \"/path/to/shift\"` under [datasets.folders] (a directory with {LAYOUT})")
        if not root.is_dir():
            raise SourceError(f"downstream {label!r}: {root} is not a directory; expected {LAYOUT}")
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
        ood = [n for n in names if n.startswith("ood_") and len(n) > len("ood_")]
        missing = [n for n in ("train", ID_TEST) if n not in names] + ([] if ood else ["ood_<name>"])
        if missing:
            raise SourceError(f"downstream {label!r}: {root} lacks {', '.join(missing)}; expected {LAYOUT}")
        classes = list_class_dirs(root / "train", FOLDER_LAYOUT)
        ids = {c: i for i, c in enumerate(classes)}
        splits = {}
        for split in ("train", ID_TEST, *ood):
            where = root / split
            dirs = list_class_dirs(where, FOLDER_LAYOUT)
            extra = sorted(set(dirs) - set(ids))
            if extra:
                raise SourceError(f"downstream {label!r}: {where} has classes train/ lacks: {', '.join(extra[:5])}; "
                                  f"a test split may only hold classes the model is trained on")
            df = scan_image_folder(where, dirs, FOLDER_LAYOUT, reporter, f"indexing {label}")
            splits[split] = Split([where / p for p in df["path"]],
                                  df["class_name"].map(ids).to_numpy(np.int64))
        return DownstreamTask(label, len(classes), splits, ID_TEST, tuple(ood), o.metric, metric_scorer(o.metric))
