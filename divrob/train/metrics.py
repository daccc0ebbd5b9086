"""Scores exactly as WILDS computes them (its metric classes, macro over labels in y_true)."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_pred: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    import torch
    from wilds.common.metrics.all_metrics import F1, Accuracy, Recall

    if len(y_true) == 0:
        return {"f1_macro": float("nan"), "acc": float("nan"), "recall_macro": float("nan"), "n": 0}
    p = torch.as_tensor(np.asarray(y_pred))
    t = torch.as_tensor(np.asarray(y_true))
    return {
        "f1_macro": float(F1(average="macro").compute(p, t, return_dict=False)),
        "acc": float(Accuracy().compute(p, t, return_dict=False)),
        "recall_macro": float(Recall(average="macro").compute(p, t, return_dict=False)),
        "n": int(len(y_true)),
    }
