"""The workspace: one directory holding config, store, indexes, manifests, runs and figures."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from divrob.errors import ConfigError, WorkspaceError
from divrob.fileio import write_text_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_WORKSPACE = "divrob-work"
ENV_VAR = "DIVROB_WORKSPACE"
CONFIG_NAME = "divrob.toml"


class DatasetRoots(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    imagenet: str = Field("", description="ILSVRC-2012 root holding train/<wnid>/*.JPEG")
    inat2017: str = Field("", description="iNaturalist 2017 root holding train2017.json")
    iwildcam: str = Field("", description="WILDS root holding iwildcam_v2.0/")
    wilds: str = Field("", description="WILDS root holding fmow_v1.1/, camelyon17_v1.0/, rxrx1_v1.0/ (and "
                                       "iwildcam_v2.0/ when iwildcam is unset)")
    domainnet: str = Field("", description="DomainNet root: <domain>/<class>/<image> and <domain>_train.txt / _test.txt")
    fractaldb: str = Field("", description="FractalDB ImageFolder (default: workspace data/)")
    diffusion: str = Field("", description="generated ImageFolder (default: workspace data/)")
    folders: dict[str, str] = Field(default_factory=dict, description="named ImageFolder sources")
    weights: dict[str, str] = Field(default_factory=dict, description="named weight files a recipe names as @NAME")


class ComputeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    device: str = "auto"
    num_workers: int = Field(2, ge=0)
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = torch's default")
    max_unreadable_fraction: float = Field(0.01, ge=0, le=1, description="a run whose images (of any phase's "
                                           "split) are unreadable beyond this fraction fails, listing the first")


class DemoConfig(BaseModel):
    """Sizes of the generated offline data (demo-shapes, camtrap-sim)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    shapes_classes: int = Field(24, ge=2)
    shapes_per_class: int = Field(120, ge=1)
    shapes_size: int = Field(32, ge=16)
    camtrap_images: int = Field(2400, ge=100)
    camtrap_size: int = Field(32, ge=16)
    camtrap_species: int = Field(8, ge=2)
    camtrap_shortcut: float = Field(0.8, ge=0, le=1, description="share of a species' ID images in its home habitat")
    seed: int = 0


EXECUTORS = ("inline", "local", "submitit-local", "slurm")


class ExecutorConfig(BaseModel):
    """How `divrob study run` dispatches jobs (the CLI flags override these)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    default: Literal["inline", "local", "submitit-local", "slurm"] = "inline"
    gpus: Union[Literal["auto"], list[int]] = Field("auto", description="GPU indices for local slots")
    slots_per_gpu: int = Field(1, ge=1)
    cpu_slots: int = Field(1, ge=1, description="local job slots when no GPU is visible")
    on_lost: Literal["fail", "requeue"] = "fail"
    max_requeues: int = Field(3, ge=0)
    stall_minutes: float = Field(15.0, gt=0, description="a running job without a heartbeat (progress or "
                                 "status) this long while its process lives is `stalled`")
    on_stall: Literal["mark", "requeue"] = "mark"


class SlurmConfig(BaseModel):
    """SLURM defaults for `--executor slurm` (and the limits `submitit-local` honours)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    partition: str = ""
    account: str = ""
    qos: str = ""
    gpus_per_run: int = Field(1, ge=0, description="GPUs per run = tasks per node (DDP ranks)")
    nodes_per_run: int = Field(1, ge=1)
    cpus_per_gpu: int = Field(8, ge=1)
    mem_gb: int = Field(0, ge=0, description="memory per node in GB; 0 = the cluster default")
    time_min: int = Field(24 * 60, ge=1)
    array_parallelism: int = Field(64, ge=1)
    max_num_timeout: int = Field(20, ge=0, description="resubmissions after a time-out (preemptions are free)")
    warning_lead_s: int = Field(90, ge=1, le=65535, description="SLURM warns a job this long before its time "
                                "limit (sbatch --signal=USR2@N); the job then checkpoints and stops")
    poll_s: float = Field(30.0, gt=0)
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job")
    extra: dict[str, Union[str, int, bool]] = Field(default_factory=dict, description="more #SBATCH options")


class NotifyConfig(BaseModel):
    """Messages when a study finishes, a run fails (not a preemption) or stalls: one line each."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(default_factory=list, description="argv run with the message appended "
                               "(never through a shell), e.g. [\"notify-send\", \"divrob\"]")
    webhook: str = Field("", description="an http(s) URL that gets a JSON POST: {text, event, study, host, time}")
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("webhook")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number

    datasets: DatasetRoots = Field(default_factory=DatasetRoots)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)


CONFIG_TEMPLATE = """\
# divrob workspace configuration.
# Paths may be absolute or relative to this file's directory.

[datasets]
imagenet = ""   # ILSVRC-2012: a directory holding train/<wnid>/*.JPEG
inat2017 = ""   # iNaturalist 2017: a directory holding train2017.json and train_val_images/
iwildcam = ""   # WILDS root: a directory holding iwildcam_v2.0/ (metadata.csv, train/)
wilds = ""      # WILDS root of the other WILDS tasks: fmow_v1.1/, camelyon17_v1.0/, rxrx1_v1.0/
domainnet = ""  # DomainNet: <domain>/<class>/<image> plus <domain>_train.txt and <domain>_test.txt

[datasets.folders]
# any ImageFolder (<class>/<image>) usable as source = "folder:<name>", or a shift of your own
# (train/, id_test/ and ood_*/ ImageFolders) usable as downstream = "folder:<name>"
# mydata = "/data/mydata"

[datasets.weights]
# weight files a recipe names as pretrain = { weights = "@<name>" } or "open_clip:<arch>:@<name>"
# clip-yfcc15m = "/ckpt/yfcc15m-rn50.pt"

[compute]
device = "auto"     # "auto" (cuda when available), "cpu" or "cuda"
num_workers = 2     # DataLoader worker processes on the CPU path
threads = 0         # torch CPU threads; 0 leaves torch's default
max_unreadable_fraction = 0.01  # a run fails when more of a split's images than this cannot be read

[executor]
default = "inline"  # `divrob study run` executor: "inline", "local", "submitit-local" or "slurm"
gpus = "auto"       # local GPU slots: "auto" (nvidia-smi / $CUDA_VISIBLE_DEVICES) or a list, e.g. [0, 1]
slots_per_gpu = 1   # jobs sharing one GPU
cpu_slots = 1       # local jobs at once when no GPU is visible
on_lost = "fail"    # a job whose process vanished (SIGKILL, OOM killer): "fail" or "requeue"
max_requeues = 3    # requeues of one lost job before it is marked failed
stall_minutes = 15  # a running job without a heartbeat this long (its process alive) is "stalled"
on_stall = "mark"   # a stalled job: "mark" it (and notify) or "requeue" it (stopped, resumes from its checkpoint)

[slurm]
partition = ""
account = ""
qos = ""
gpus_per_run = 1          # GPUs per run; >1 runs one DDP task per GPU (tasks_per_node)
nodes_per_run = 1
cpus_per_gpu = 8
mem_gb = 0                # per node; 0 = the cluster default
time_min = 1440           # per job; checkpointed and requeued on time-out or preemption
array_parallelism = 64    # array tasks running at once
max_num_timeout = 20      # resubmissions after a time-out (preemptions do not count)
warning_lead_s = 90       # SLURM's warning this long before the time limit: checkpoint and stop
poll_s = 30               # seconds between sacct polls
setup = []                # shell lines before each job, e.g. ["module load cuda/12.4"]

[slurm.extra]
# more #SBATCH options, e.g. constraint = "h100" or exclusive = true

[notify]
# one line when a study finishes, a run fails (not on preemption) or stalls:
# command = ["notify-send", "divrob"]   # argv, the message appended; never run through a shell
# webhook = "https://hooks.example.org/..."   # gets a JSON POST {"text": ..., "event": ..., "study": ...}

[demo]
# sizes of the generated offline data; changing them after generation is an error
# (delete data/demo-shapes or data/camtrap-sim to regenerate)
shapes_classes = 24
shapes_per_class = 120
shapes_size = 32
camtrap_images = 2400
camtrap_size = 32
camtrap_species = 8
camtrap_shortcut = 0.8    # share of a species' in-distribution images taken in its home habitat
seed = 0
"""


def resolve_root(path: str | os.PathLike | None = None) -> Path:
    """The workspace directory: the given path, else $DIVROB_WORKSPACE, else ./divrob-work."""
    if path is None or str(path) == "":
        path = os.environ.get(ENV_VAR) or DEFAULT_WORKSPACE
    return Path(path).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: WorkspaceConfig

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def db_path(self) -> Path:
        return self.root / "divrob.duckdb"

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def data(self) -> Path:
        """Generated datasets (demo sources, FractalDB, diffusion images)."""
        return self.root / "data"

    def dataset_root(self, name: str) -> Path | None:
        """The configured root of a dataset, resolved against the workspace; None if unset."""
        value = getattr(self.config.datasets, name, "")
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def folder_root(self, name: str) -> Path | None:
        value = self.config.datasets.folders.get(name)
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def weights_path(self, name: str) -> Path | None:
        """The file [datasets.weights] names `name`, resolved against the workspace; None if unset."""
        value = self.config.datasets.weights.get(name)
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def ensure_dirs(self) -> None:
        for d in (self.indexes, self.manifests, self.runs, self.cache, self.figures, self.data):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise WorkspaceError(f"workspace folder {d}: {e.strerror or e}; make it a writable directory") from None


def init_workspace(path: str | os.PathLike | None = None) -> Workspace:
    """Create a workspace (idempotent: an existing divrob.toml is kept as it is)."""
    root = resolve_root(path)
    for above in (root, *root.parents):
        if above.exists():
            if not above.is_dir():
                raise ConfigError(f"{above} is a file, so no workspace can be made at {root}; choose another path")
            break
    try:
        root.mkdir(parents=True, exist_ok=True)
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            write_text_atomic(cfg, CONFIG_TEMPLATE)
    except OSError as e:
        raise WorkspaceError(f"cannot create the workspace {root}: {e.strerror or e} ({e.filename or root})") from None
    ws = open_workspace(root)
    ws.ensure_dirs()
    return ws


def open_workspace(path: str | os.PathLike | None = None) -> Workspace:
    """Open an existing workspace; a missing one gets an error that says how to create it."""
    root = resolve_root(path)
    cfg_path = root / CONFIG_NAME
    if not cfg_path.exists():
        raise WorkspaceError(
            f"no divrob workspace at {root} (no {CONFIG_NAME}); create one with `divrob init {root}` "
            f"or point --workspace / ${ENV_VAR} at an existing one"
        )
    try:
        raw = tomllib.loads(cfg_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{cfg_path}: not valid TOML: {e}") from None
    try:
        config = WorkspaceConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = "unknown key (check its spelling against the README)" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{cfg_path}: {field}: {msg}") from None
    ws = Workspace(root=root, config=config)
    ws.ensure_dirs()
    return ws
