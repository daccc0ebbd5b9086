"""Launching a study: the one core function behind `divrob study run|retry` and the TUI's launch.

Generate the sources the recipe still needs, plan (which builds the manifests), queue the
unfinished runs and serve them: inline, through an executor's manager in this process, or by a
detached scheduler that outlives the caller. A detached study that must generate first runs in
a background process, `python -m divrob.dispatch.launch REQUEST_JSON`, which serves the same
request in its foreground. Launching a study whose runs are all finished starts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from divrob.dispatch.jobs import Job, live_manager, logs_dir, wake
from divrob.dispatch.scheduler import SLURM_OVERRIDES
from divrob.errors import DivrobError, UsageError
from divrob.progress import SILENT, Reporter
from divrob.workspace import EXECUTORS, Workspace

# the executor options a launch may set (the CLI's flags; the workspace config gives the rest)
OPTIONS = ("slots_per_gpu", "cpu_slots", "on_lost", *SLURM_OVERRIDES)


@dataclass(frozen=True)
class LaunchRequest:
    recipe: Path  # a recipe file
    workspace: Path | None = None  # None: $DIVROB_WORKSPACE or ./divrob-work
    executor: str | None = None  # None: [executor] default in divrob.toml
    retry: bool = False  # queue only the failed and cancelled runs
    detach: bool = False  # hand the runs to a background scheduler and return
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise DivrobError(f"unknown executor option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
        if self.options.get("on_lost") not in (None, "fail", "requeue"):
            raise UsageError(f"--on-lost {self.options['on_lost']!r}: choose fail or requeue")

    def to_json(self) -> str:
        d = asdict(self)
        d["recipe"], d["workspace"] = str(self.recipe), None if self.workspace is None else str(self.workspace)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LaunchRequest":
        d = json.loads(text)
        return cls(**{**d, "recipe": Path(d["recipe"]),
                      "workspace": None if d.get("workspace") is None else Path(d["workspace"])})


@dataclass
class LaunchOutcome:
    study: str
    executor: str
    runs: int = 0  # distinct runs of the study
    queued: list[str] = field(default_factory=list)  # handed to the executor by this launch
    skipped: list[str] = field(default_factory=list)  # finished before it (never redone)
    waiting: list[str] = field(default_factory=list)  # already queued or running under a live manager
    left: dict[str, str] = field(default_factory=dict)  # inline: run id → the other process training it
    ended: dict[str, Job] = field(default_factory=dict)  # served in the foreground: their jobs when it returned
    detached: bool = False
    generating: list[str] = field(default_factory=list)  # detached: generators a background study runs first
    background: dict[str, Any] | None = None  # detached: pid (and log) of the scheduler or background study

    def count(self, state: str) -> int:
        return sum(1 for j in self.ended.values() if j.state == state)

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.ended.values() if j.state == "failed"]

    def summary(self) -> list[str]:
        """What happened, in plain lines (the first one says it all)."""
        bg = self.background or {}
        watch = "watch with `divrob jobs ls`; it keeps running after you log out"
        if self.generating:
            return [f"{self.study}: generating {', '.join(self.generating)} first in the background (pid "
                    f"{bg.get('pid')}, log {bg.get('log')}), then its runs go to {self.executor}", watch]
        if self.detached:
            head = (f"{self.runs} runs: {len(self.queued)} queued on {self.executor}, {len(self.skipped)} already "
                    f"finished, {len(self.waiting)} already queued or running")
            if self.background is None:
                return [f"{head}; nothing to run, no scheduler started"]
            return [f"{head}; scheduler pid {bg.get('pid')}, log in {bg.get('log')}", watch]
        trained, cancelled = self.count("finished"), self.count("cancelled")
        left = len(self.ended) - trained - len(self.failed) - cancelled
        lines = [f"{self.runs} runs: {trained} trained, {len(self.skipped)} already finished, {len(self.failed)} "
                 f"failed, {cancelled} cancelled" + (f", {left} still queued or running" if left else "")
                 + (f", {len(self.left)} left to another process" if self.left else "")]
        lines += [f"left {r} to {owner}, which is training it" for r, owner in self.left.items()]
        lines += [f"failed {j.job_id} {j.label}: {j.reason} (`divrob jobs logs {j.job_id[:8]}`)" for j in self.failed]
        return lines


def preview_study(ws: Workspace, recipe_path: Path, reporter: Reporter = SILENT) -> tuple[str, list[dict[str, Any]]]:
    """(study name, jobs) of what a launch would do: the generation jobs when generation comes
    first (the manifests and runs are planned after it), else every job of the plan (building
    its manifests) with what a launch does with it."""
    study, rows, _ = _preview(ws, recipe_path, reporter)
    return study, rows


def preview_with_cost(ws: Workspace, recipe_path: Path, reporter: Reporter = SILENT, gpus: int = 1,
                      gpu: str | None = None):
    """`preview_study` and the estimated cost of its unfinished runs (`divrob.dispatch.cost`);
    the cost is None while generation comes first (the manifests are not planned yet)."""
    from divrob.dispatch.cost import study_cost

    study, rows, plan = _preview(ws, recipe_path, reporter)
    if plan is None:
        return study, rows, None
    todo = [r["job"] for r in rows if r["kind"] == "run" and not r["state"].startswith("finished")]
    return study, rows, study_cost(ws, plan, todo, gpus, gpu)


def _preview(ws: Workspace, recipe_path: Path, reporter: Reporter):
    from divrob.dispatch.study import job_states, plan_rows
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study
    from divrob.sources.generators import generation_job_id, pending_generations
    from divrob.states import ACTIVE

    recipe = load_recipe(recipe_path)
    gens = pending_generations(ws, recipe)
    if not gens:
        plan = plan_study(ws, recipe, reporter)
        return recipe.study.name, plan_rows(ws, plan), plan
    ids = [generation_job_id(g) for g in gens]
    stored = job_states(ws, ids)
    rows = []
    for jid, g in zip(ids, gens):
        job = stored.get(jid)
        state = f"{job.state} ({job.executor})" if job is not None and job.state in ACTIVE else "to run"
        rows.append({"job": jid, "kind": "generate", "label": f"generate {g['generator']}", "deps": [],
                     "state": state, "reason": job.reason if job is not None and job.state == "failed" else None})
    return recipe.study.name, rows, None


def launch_study(request: LaunchRequest, reporter: Reporter = SILENT, *, in_background: bool = False) -> LaunchOutcome:
    """Launch (or retry) a study as asked; see the module docstring. `in_background`: this is the
    background study process (its manager records itself as detached)."""
    from divrob.recipes.load import load_recipe
    from divrob.sources.generators import pending_generations
    from divrob.workspace import open_workspace

    ws = open_workspace(request.workspace)
    executor = request.executor or ws.config.executor.default
    if request.retry and executor == "inline":  # retrying needs the queue; inline has none
        executor = "local"
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: choose from {', '.join(EXECUTORS)}")
    if executor == "inline" and request.detach:
        raise UsageError("--detach needs a queue: use --executor local, submitit-local or slurm")
    recipe = load_recipe(request.recipe)
    if executor == "inline":
        return _inline(ws, recipe, reporter)
    gens = pending_generations(ws, recipe)
    if gens and request.detach:
        return _in_background(ws, recipe, request, executor, [g["generator"] for g in gens])
    if gens:
        from divrob.dispatch.generation import run_generations

        run_generations(ws, recipe.study.name, gens, executor, request.options, reporter)
    return _queue(ws, recipe, request, executor, reporter, in_background)


def _inline(ws: Workspace, recipe, reporter: Reporter) -> LaunchOutcome:
    from divrob.dispatch.inline import run_study

    done = run_study(ws, recipe, reporter)
    labels = {pr.spec.run_id: f"{pr.distribution} / {pr.spec.arch} / seed {pr.spec.seed}" for pr in done.plan.runs}
    ended = {r: Job(r, "run", recipe.study.name, labels[r], executor="inline", state="finished") for r in done.trained}
    ended.update({r: Job(r, "run", recipe.study.name, labels[r], executor="inline", state="failed", reason=why)
                  for r, why in done.failed.items()})
    _alert_inline(ws, recipe.study.name, ended, reporter)
    return LaunchOutcome(recipe.study.name, "inline", runs=len(labels), queued=list(ended), skipped=done.skipped,
                         ended=ended, left=done.left)


def _alert_inline(ws: Workspace, study: str, ended: dict[str, Job], reporter: Reporter) -> None:
    """The alerts a manager sends, for a study served in this process: its failed runs, then its end."""
    from divrob.dispatch.notify import Notifier, failed_message, study_message

    notifier = Notifier(ws.config.notify, reporter.log)
    if not notifier.enabled or not ended:
        return
    for j in ended.values():
        if j.state == "failed":
            notifier.send("failed", study, failed_message(study, j.label, j.job_id, j.reason))
    counts = {s: sum(1 for j in ended.values() if j.state == s) for s in ("finished", "failed")}
    notifier.send("finished", study, study_message(study, counts))


def _queue(ws: Workspace, recipe, request: LaunchRequest, executor: str, reporter: Reporter,
           in_background: bool) -> LaunchOutcome:
    from divrob.dispatch.scheduler import make_manager, start_detached
    from divrob.dispatch.study import enqueue, follow, job_states
    from divrob.runs.grid import plan_study

    plan = plan_study(ws, recipe, reporter)
    queued = enqueue(ws, plan, executor, retry=request.retry)
    out = LaunchOutcome(recipe.study.name, executor, runs=sum(1 for j in plan.jobs() if j.kind != "manifest"),
                        queued=queued.queued, skipped=queued.skipped, waiting=queued.waiting, detached=request.detach)
    mine = out.queued + out.waiting
    if not mine:  # all finished (or cancelled, waiting for a retry): no manager to start
        return out
    if request.detach:
        out.background = {**start_detached(ws, executor, request.options),
                          "log": str(logs_dir(ws) / f"scheduler-{executor}.log")}
        return out
    counts = make_manager(ws, executor, request.options, reporter).run(detached=in_background)
    live = live_manager(ws, executor)
    if not counts and live:  # a detached scheduler owns the queue: follow it
        reporter.log(f"a {executor} scheduler (pid {live['pid']}) is serving this workspace; following it "
                     f"(Ctrl-C stops following, not the jobs)")
        wake(ws)
        follow(ws, mine, reporter)
    out.ended = job_states(ws, mine)
    return out


def _in_background(ws: Workspace, recipe, request: LaunchRequest, executor: str, generators: list[str]) -> LaunchOutcome:
    """Serve the whole study (generation, then its runs) in a process of its own session, which
    survives the caller's logout."""
    child = replace(request, recipe=Path(recipe.path).resolve(), workspace=ws.root, executor=executor, detach=False)
    log = logs_dir(ws) / f"study-{recipe.study.name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "divrob.dispatch.launch", child.to_json()],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=ws.root)
    return LaunchOutcome(recipe.study.name, executor, detached=True, generating=generators,
                         background={"pid": proc.pid, "log": str(log)})


def main(argv: list[str]) -> int:
    from divrob.progress import LogReporter, log_to

    log_to(sys.stdout)
    reporter = LogReporter()
    request = LaunchRequest.from_json(argv[0])
    reporter.log(f"study process pid {os.getpid()}: {request.recipe} on {request.executor}")
    try:
        out = launch_study(request, reporter, in_background=True)
    except DivrobError as e:
        reporter.log(f"failed: {e}")
        return e.exit_code
    for line in out.summary():
        reporter.log(line)
    return 1 if out.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
