"""DomainNet domain pairs (the paper's appendix E): fine-tune on one domain's training list, test
on its test list (ID) and on each other domain's test list (one OOD split per domain, named by
the domain), scored by accuracy.

The paper does not state its DomainNet fine-tuning settings; divrob keeps its base recipe (WILDS
iWildCam's optimizer, learning rate, batch and epochs) at 224 px, ImageNet's input size.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from divrob.downstream.task import ID_TEST, DownstreamTask, Split, TaskKind, metric_scorer, task_root
from divrob.progress import SILENT, Reporter
from divrob.sources.domainnet import DOMAINS, LAYOUT


class DomainNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_domain: str = Field(description="the domain fine-tuned on; its test list is the ID test split")
    ood_domains: list[str] | None = Field(None, min_length=1, description="OOD splits (default: the other five)")

    @field_validator("id_domain")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DOMAINS:
            raise ValueError(f"{v!r} is not a DomainNet domain; choose from {', '.join(DOMAINS)}")
        return v

    @model_validator(mode="after")
    def _ood(self) -> "DomainNetOptions":
        if self.ood_domains is None:
            self.ood_domains = [d for d in DOMAINS if d != self.id_domain]
            return self
        unknown = [d for d in self.ood_domains if d not in DOMAINS]
        if unknown:
            raise ValueError(f"ood_domains: {unknown} are not DomainNet domains; choose from {', '.join(DOMAINS)}")
        if self.id_domain in self.ood_domains:
            raise ValueError(f"ood_domains: {self.id_domain!r} is the ID domain; an OOD split must be another domain")
        if len(set(self.ood_domains)) != len(self.ood_domains):
            raise ValueError("ood_domains: a domain is listed twice")
        self.ood_domains = [d for d in DOMAINS if d in self.ood_domains]  # one order: one run id
        return self


class DomainNetKind(TaskKind):
    name = "domainnet"
    summary = "DomainNet: id_domain's train/test lists, each of ood_domains' test lists an OOD split; accuracy"
    Options = DomainNetOptions
    shorthand = "id_domain"
    metric = ("acc", "accuracy")

    def label(self, o: DomainNetOptions) -> str:
        return f"domainnet:{o.id_domain}"

    def spec_options(self, o: DomainNetOptions) -> dict[str, Any]:
        return {"ood_domains": list(o.ood_domains)}

    def finetune_defaults(self, o: DomainNetOptions) -> dict[str, Any]:
        return {"image_size": 224}

    def load(self, ws, o: DomainNetOptions, reporter: Reporter = SILENT) -> DownstreamTask:
        import numpy as np
        import pandas as pd

        from divrob.sources.domainnet import check_labels, read_split

        label = self.label(o)
        root = task_root(ws, "domainnet", label, LAYOUT)
        lists = {"train": read_split(root, o.id_domain, "train"), ID_TEST: read_split(root, o.id_domain, "test")}
        lists |= {d: read_split(root, d, "test") for d in o.ood_domains}
        check_labels(pd.concat(lists.values(), ignore_index=True), f"DomainNet lists under {root}")
        splits = {name: Split([root / p for p in df["path"]], df["label"].to_numpy(np.int64))
                  for name, df in lists.items()}
        n_classes = int(max(int(df["label"].max()) for df in lists.values())) + 1
        return DownstreamTask(label, n_classes, splits, ID_TEST, tuple(o.ood_domains), "acc", metric_scorer("acc"))
