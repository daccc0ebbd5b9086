"""camtrap-sim as a downstream task: the offline camera-trap shift (generated once into the
workspace by `camtrap_sim`), split and scored like iWildCam-WILDS (macro-F1)."""

from __future__ import annotations

from divrob.downstream.task import ID_TEST, DownstreamTask, Split, TaskKind, metric_scorer
from divrob.progress import SILENT, Reporter

SPLITS = ("train", "id_val", ID_TEST, "val", "test")


class CamtrapKind(TaskKind):
    name = "camtrap-sim"
    summary = "offline camera-trap simulation, split like iWildCam-WILDS (generated on first use); macro-F1"
    metric = ("f1_macro", "macro-F1")

    def load(self, ws, o, reporter: Reporter = SILENT) -> DownstreamTask:
        import numpy as np

        from divrob.downstream.camtrap_sim import ensure_camtrap_sim, load_camtrap_metadata

        d = ws.config.demo
        root = ensure_camtrap_sim(ws.data / "camtrap-sim", seed=d.seed, size=d.camtrap_size, n_species=d.camtrap_species,
                                  images=d.camtrap_images, shortcut=d.camtrap_shortcut, reporter=reporter)
        meta = load_camtrap_metadata(root)
        names = meta["split"].to_numpy()
        splits = {s: Split([root / f for f in meta["filename"][names == s]],
                           meta["y"].to_numpy(np.int64)[names == s]) for s in SPLITS}
        return DownstreamTask(self.name, int(meta["y"].max()) + 1, splits, ID_TEST, ("test", "val"),
                              "f1_macro", metric_scorer("f1_macro"))
