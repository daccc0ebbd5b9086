"""External references a study is read against: published trend lines and published points.

The paper measures residuals against Miller et al.'s trend for ImageNet-pretrained models on
iWildCam, not against a line fitted to the points it plots. divrob ships no such numbers (they
must come from the publication the user cites); a user supplies them:

    --reference "miller-imagenet=SLOPE,INTERCEPT,probit"      a line OOD = inverse(SLOPE·T(ID) + INTERCEPT)
    --reference-points published.csv                          columns group,id,ood (metrics in [0, 1])

A reference line has no sampling error of its own here (its authors' uncertainty is not known to
divrob), so intervals against it carry the study's uncertainty only; reference points are fitted
like any group, each point its own resampling unit (they are distinct models).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from divrob.analysis import ID_COL, OOD_COL, TRANSFORMS
from divrob.analysis.trends import Trend

_LINE = re.compile(r"^\s*(?P<name>[^=,]+?)\s*=\s*(?P<values>.+)$")
POINT_COLUMNS = ("group", "id", "ood")


def parse_reference(text: str, default_transform: str = "probit") -> Trend:
    """A reference line from NAME=SLOPE,INTERCEPT[,TRANSFORM] (TRANSFORM: the scale the line was
    fitted on; default the analysis' own)."""
    m = _LINE.match(text or "")
    usage = (f"--reference {text!r}: write NAME=SLOPE,INTERCEPT[,TRANSFORM], e.g. "
             f"'miller-imagenet=0.83,-0.41,probit' with TRANSFORM one of {', '.join(TRANSFORMS)}")
    if m is None:
        raise ValueError(usage)
    parts = [p.strip() for p in m.group("values").split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(usage)
    try:
        slope, intercept = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(usage) from None
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise ValueError(usage)
    transform = parts[2] if len(parts) == 3 else default_transform
    if transform not in TRANSFORMS:
        raise ValueError(usage)
    return Trend(m.group("name"), slope, intercept, float("nan"), 0, transform)


def parse_references(texts, default_transform: str = "probit") -> dict[str, Trend]:
    """Reference lines by name; a name given twice is an error."""
    out: dict[str, Trend] = {}
    for text in texts or ():
        ref = parse_reference(text, default_transform)
        if ref.group in out:
            raise ValueError(f"--reference {ref.group!r} is given twice; give each line its own name")
        out[ref.group] = ref
    return out


def load_reference_points(path) -> pd.DataFrame:
    """Rows of (group, ID_COL, OOD_COL) from a CSV with columns group,id,ood (metric values in [0, 1])."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"--reference-points {path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"--reference-points {path}: not a readable CSV ({e})") from None
    missing = [c for c in POINT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"--reference-points {path}: missing column(s) {', '.join(missing)}; "
                         f"the file needs the header {','.join(POINT_COLUMNS)}")
    out = pd.DataFrame({"group": df["group"].astype(str).str.strip()})
    for col, name in (("id", ID_COL), ("ood", OOD_COL)):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header
            raise ValueError(f"--reference-points {path}: line {row}: {col}={df[col].iloc[row - 2]!r} is not a number")
        if (values > 1).any() or (values < 0).any():
            hint = " (they look like percentages: divide by 100)" if values.max() <= 100 else ""
            raise ValueError(f"--reference-points {path}: {col} values must lie in [0, 1]{hint}")
        out[name] = values.to_numpy(dtype=np.float64)
    if out.empty:
        raise ValueError(f"--reference-points {path}: the file holds no points")
    return out.dropna(subset=[ID_COL, OOD_COL]).reset_index(drop=True)
