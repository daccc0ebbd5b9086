"""Generated sources inside studies: which generations a recipe still needs, and the job body
that runs one. A study generates FractalDB / diffusion images first, once, through the same
executors as training; then its manifests can be built."""

from __future__ import annotations

import json
from typing import Any

from divrob.errors import DivrobError, SourceError
from divrob.fileio import short_hash
from divrob.progress import SILENT, Reporter
from divrob.workspace import Workspace

GENERATED = ("fractaldb", "diffusion")


def generator_params(name: str, spec, ws: Workspace) -> dict[str, Any]:
    """The generator's full, validated parameters from a recipe's [generate.<name>] table
    (`per_class = "imagenet"` reads the workspace's ImageNet index for its counts)."""
    if name == "fractaldb":
        from divrob.sources.fractaldb import fractaldb_params

        return fractaldb_params(**spec.model_dump())
    from divrob.sources.diffusion import diffusion_params, imagenet_per_class, resolve_classes

    s = spec.model_dump(exclude={"batch"})
    classes = resolve_classes(s.pop("classes"))
    if s["per_class"] == "imagenet":
        s["per_class"] = imagenet_per_class(classes, ws)
    return diffusion_params(classes, **s)


def _status(name: str, root) -> tuple[bool, dict | None]:
    """(complete, parameters on disk) of a generated source directory."""
    from divrob.sources.diffusion import PARAMS_FILE as DIFF_PARAMS, diffusion_status
    from divrob.sources.fractaldb import PARAMS_FILE as FRAC_PARAMS, fractaldb_status

    meta = root / (FRAC_PARAMS if name == "fractaldb" else DIFF_PARAMS)
    on_disk = json.loads(meta.read_text()) if meta.is_file() else None
    if name == "fractaldb":
        st = fractaldb_status(root)
        complete = st is None or st[0] >= st[1]
    else:
        st = diffusion_status(root)
        complete = st is None or bool(st[0])
    return complete, on_disk


def pending_generations(ws: Workspace, recipe) -> list[dict[str, Any]]:
    """Job parameters of every generation the recipe's distributions still need."""
    from divrob.sources import generated_root

    used = sorted({s for ed in recipe.distributions for s in ed.distribution.sources if s in GENERATED})
    out = []
    for name in used:
        root = generated_root(ws, name)
        spec = getattr(recipe.generate, name)
        exists = root.exists() and any(root.iterdir())
        if spec is None:
            if not exists:
                raise SourceError(
                    f"{recipe.path}: distributions use source {name!r}, which is not at {root}; add a "
                    f"[generate.{name}] table to the recipe so the study generates it, or run `divrob generate {name}`"
                )
            continue
        params = generator_params(name, spec, ws)
        if exists:
            complete, on_disk = _status(name, root)
            if on_disk is not None:
                differs = sorted(k for k in params if on_disk.get(k) != params[k])
                if differs:
                    raise SourceError(
                        f"{recipe.path}: [generate.{name}] differs from the {name} at {root} in {', '.join(differs)}; "
                        "make the recipe match it, or delete the directory to generate anew"
                    )
            if complete:
                continue
        out.append({"generator": name, "params": params,
                    **({"batch": spec.batch} if name == "diffusion" else {})})
    return out


def generation_job_id(job: dict[str, Any]) -> str:
    return f"generate-{job['generator']}-{short_hash(job['params'], 12)}"


def generate(ws: Workspace, job: dict[str, Any], reporter: Reporter = SILENT) -> None:
    """The body of a generate job (inline, local worker or SLURM): resumable, so a requeued job
    finishes what an interrupted one started."""
    from divrob.sources import generated_root

    name = job.get("generator")
    if name not in GENERATED:
        raise DivrobError(f"unknown generator {name!r}; known: {', '.join(GENERATED)}")
    root = generated_root(ws, name)
    device = ws.config.compute.device
    if name == "fractaldb":
        from divrob.sources.fractaldb import generate_fractaldb

        generate_fractaldb(root, job["params"], reporter, device=device)
    else:
        from divrob.sources.diffusion import generate_diffusion

        generate_diffusion(root, job["params"], reporter, device=device, batch=int(job.get("batch", 8)))
