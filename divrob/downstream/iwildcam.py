"""iWildCam-WILDS through the `wilds` package itself, so splits and labels are exactly WILDS's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from divrob.errors import SourceError

LAYOUT = ("<root>/iwildcam_v2.0/ with RELEASE_v2.0.txt, metadata.csv (split, filename, y, location_remapped, "
          "sequence_remapped, datetime, ...) and train/<filename>")


def load_iwildcam(root: Path):
    """(data_dir, filenames, labels, split names, n_classes) from `IWildCamDataset(download=False)`."""
    root = Path(root)
    data_dir = root / "iwildcam_v2.0"
    if not (data_dir / "metadata.csv").exists():
        raise SourceError(f"iwildcam: {root} does not hold iwildcam_v2.0/metadata.csv; expected {LAYOUT}")
    if not (data_dir / "RELEASE_v2.0.txt").exists():
        # wilds treats a data dir without its release marker as absent and would try to download
        raise SourceError(f"iwildcam: {data_dir} has no RELEASE_v2.0.txt, so wilds does not accept it as "
                          f"a complete download; re-extract the WILDS archive (expected {LAYOUT})")
    from wilds.datasets.iwildcam_dataset import IWildCamDataset

    try:
        ds = IWildCamDataset(root_dir=str(root), download=False)
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise SourceError(f"iwildcam: {root}/iwildcam_v2.0/metadata.csv is not in the WILDS format ({e!r})") from None
    inverse = {v: k for k, v in ds.split_dict.items()}
    split_names = np.array([inverse[int(s)] for s in ds.split_array])
    return Path(ds.data_dir), np.asarray(ds._input_array), ds.y_array.numpy(), split_names, int(ds.n_classes)
