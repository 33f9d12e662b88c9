"""What the trainer's console output means: events, and the run state they add up to.

`kohya_plan.trainlog.records.LogParser` turns sd-scripts' raw output into these events;
`RunState.apply` folds them into one picture of the run (progress, loss curve, files
written, what went wrong).
Pure data: no I/O, stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

# StartupInfo names, from the "running training / 学習開始" block sd-scripts prints on stdout.
TRAIN_IMAGES = "train_images"
VALIDATION_IMAGES = "validation_images"
REG_IMAGES = "reg_images"
BATCHES_PER_EPOCH = "batches_per_epoch"
EPOCHS = "epochs"
BATCH_SIZE = "batch_size"
GRAD_ACCUM_STEPS = "grad_accum_steps"
TOTAL_STEPS = "total_steps"

# Failures that follow from another process's end rather than explain it.
CONSEQUENCES = frozenset({"peer_lost", "interrupted", "child_exit"})

# Phase names (start-up steps worth showing as a status line).
PHASE_DATASET = "preparing dataset"
PHASE_ACCELERATOR = "preparing accelerator"
PHASE_MODEL = "loading model"
PHASE_LATENTS = "caching latents"
PHASE_TEXT_ENCODER = "caching text encoder outputs"
PHASE_NETWORK = "creating network"
PHASE_OPTIMIZER = "preparing optimizer"
PHASE_TRAINING = "training"


@dataclass(frozen=True, slots=True)
class StartupInfo:
    """One number of the start-up summary; `name` is one of the module's *_IMAGES/... constants."""

    name: str
    value: int
    text: str  # the value as printed (`batch size per device` lists one per dataset: "1, 2")


@dataclass(frozen=True, slots=True)
class Phase:
    """A start-up phase began (one of the PHASE_* names)."""

    name: str


@dataclass(frozen=True, slots=True)
class Progress:
    """One frame of the `steps` progress bar."""

    step: int
    total: int
    elapsed_s: float
    remaining_s: float | None
    rate: float | None
    rate_unit: str  # "it/s" or "s/it", as tqdm chose
    avr_loss: float | None
    postfix: dict[str, str]


@dataclass(frozen=True, slots=True)
class EpochStart:
    """`epoch k/N` was printed: epoch k (1-based) of N starts."""

    epoch: int
    total: int


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    """A LoRA file was written (path as sd-scripts printed it)."""

    path: str


@dataclass(frozen=True, slots=True)
class CheckpointRemoved:
    """An older LoRA file was deleted (`--save_last_n_epochs` / `--save_last_n_steps`)."""

    path: str


@dataclass(frozen=True, slots=True)
class StateSaved:
    """A training-state folder was written (`--save_state`)."""

    path: str


@dataclass(frozen=True, slots=True)
class SampleImages:
    """Sample images are being generated at this global step."""

    step: int


@dataclass(frozen=True, slots=True)
class ModelSaved:
    """`model saved.`: the final LoRA file is written, training is over."""


@dataclass(frozen=True, slots=True)
class DatasetLength:
    """`--debug_dataset`: the dataset's length in steps (batches per epoch)."""

    steps: int


@dataclass(frozen=True, slots=True)
class ImageFolder:
    """sd-scripts found a training folder with this many images."""

    path: str
    images: int


@dataclass(frozen=True, slots=True)
class ConfigWritten:
    """`--output_config` wrote the argument TOML here (and the trainer stops)."""

    path: str


@dataclass(frozen=True, slots=True)
class Warning:  # shadows the builtin on purpose (the project's name); import as events.Warning
    """Something the user should know that did not stop the run.

    kind: no_captions (count), reg_images_unused, no_reg_images (low importance), ignored_folder
    (name), dataset_config_overrides (name = the ignored options), lr_too_low, nan_latents,
    no_prompt_file, generic (any other WARNING record), error (any other ERROR record).
    """

    kind: str
    message: str
    count: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class NoDataFound:
    """sd-scripts found no images and returned (with exit code 0)."""

    message: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The run failed, or is failing.

    kind: cuda_oom, nan_loss, missing_model, argparse (options = the offending options),
    dataset, precision (fp16 where there is no GPU), optimizer_missing, missing_package (the
    trainer's Python lacks accelerate, torch or another requirement), interrupted, traceback
    (any other exception), child_exit (only the launcher's CalledProcessError was seen); with
    several processes also rank_died (torchrun's root cause: which rank, how it ended),
    peer_lost (a process lost the others: a consequence), rendezvous_timeout (a machine never
    joined), port_in_use. `rank` is the process (global rank) the failure belongs to, when the
    output says.
    """

    kind: str
    message: str
    detail_lines: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class ChildExit:
    """accelerate reported the trainer's exit status (negative: killed by that signal)."""

    returncode: int
    message: str


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log record (level set) or plain line (level None); only with LogParser(records=True)."""

    level: str | None
    message: str


Event: TypeAlias = (
    StartupInfo
    | Phase
    | Progress
    | EpochStart
    | CheckpointSaved
    | CheckpointRemoved
    | StateSaved
    | SampleImages
    | ModelSaved
    | DatasetLength
    | ImageFolder
    | ConfigWritten
    | Warning
    | NoDataFound
    | Failure
    | ChildExit
    | LogLine
)


@dataclass(slots=True)
class RunState:
    """Everything known about a run so far; feed it events in order with `apply`."""

    startup: dict[str, int] = field(default_factory=dict)
    dataset_length: int | None = None
    phase: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    last_progress: Progress | None = None
    losses: dict[int, float] = field(default_factory=dict)
    epoch_losses: dict[int, float] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)
    removed_checkpoints: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    sample_steps: list[int] = field(default_factory=list)
    image_folders: list[ImageFolder] = field(default_factory=list)
    config_written: str | None = None
    warnings: list[Warning] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    child_returncode: int | None = None
    saw_model_saved: bool = False
    saw_no_data: bool = False

    @property
    def step(self) -> int:
        """The last step the progress bar showed (0 before training)."""
        return self.last_progress.step if self.last_progress else 0

    @property
    def total(self) -> int | None:
        """Total optimization steps, from the bar or else from the start-up summary."""
        if self.last_progress is not None:
            return self.last_progress.total
        return self.startup.get(TOTAL_STEPS)

    @property
    def cause(self) -> Failure | None:
        """The failure that explains the run's end; the others are usually its consequences.

        One process: the first failure seen. Several: torchrun names the rank that failed
        first (rank_died); that rank's own error wins if it printed one (an OOM, a traceback),
        else the rank_died entry itself. Without it, the first failure that is not a
        consequence of another process's end (peer_lost, interrupted).
        """
        if not self.failures:
            return None
        died = [f for f in self.failures if f.kind == "rank_died" and f.rank is not None]
        own: dict[int | None, list[Failure]] = {
            d.rank: [f for f in self.failures if f.rank == d.rank and f.kind != "rank_died"]
            for d in died
        }
        # a rank that printed its own error (an OOM), then one that died without a word
        # (killed), then whatever the first one said (it lost its peers: logs merged from
        # several machines name the rank that failed first in another entry)
        for d in died:
            real = [f for f in own.get(d.rank, []) if f.kind not in CONSEQUENCES]
            if real:
                return real[0]
        for d in died:
            if not own.get(d.rank):
                return d
        if died:
            return (own.get(died[0].rank) or [died[0]])[0]
        unnamed = next((f for f in self.failures if f.kind == "rank_died"), None)
        if unnamed is not None:
            return unnamed
        first = next((f for f in self.failures if f.kind not in CONSEQUENCES), None)
        return first or self.failures[0]

    @property
    def loss_points(self) -> list[tuple[int, float]]:
        """(step, avr_loss) for each step, the last value the bar showed for it, in step order."""
        return sorted(self.losses.items())

    def apply(self, event: Event) -> None:
        """Fold one event into the state (in place)."""
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event)


# The handlers take `Event` (not the concrete class) so that one dict can hold them all; each is
# only ever called with its own class, which the assert states for mypy.
def _startup(s: RunState, e: Event) -> None:
    assert isinstance(e, StartupInfo)
    s.startup[e.name] = e.value
    if e.name == EPOCHS and s.epochs is None:
        s.epochs = e.value


def _phase(s: RunState, e: Event) -> None:
    assert isinstance(e, Phase)
    s.phase = e.name


def _progress(s: RunState, e: Event) -> None:
    assert isinstance(e, Progress)
    s.last_progress = e
    loss = e.avr_loss
    # Two frames per step: the first (after update) still shows the previous loss, the second
    # (after set_postfix) the new one; the last one shown for a step is the value to keep.
    if loss is not None:
        s.losses[e.step] = loss
        if s.epoch is not None:
            s.epoch_losses[s.epoch] = loss


def _epoch(s: RunState, e: Event) -> None:
    assert isinstance(e, EpochStart)
    s.epoch = e.epoch
    s.epochs = e.total


def _checkpoint(s: RunState, e: Event) -> None:
    assert isinstance(e, CheckpointSaved)
    s.checkpoints.append(e.path)


def _checkpoint_removed(s: RunState, e: Event) -> None:
    assert isinstance(e, CheckpointRemoved)
    s.removed_checkpoints.append(e.path)
    if e.path in s.checkpoints:
        s.checkpoints.remove(e.path)


def _state(s: RunState, e: Event) -> None:
    assert isinstance(e, StateSaved)
    s.states.append(e.path)


def _sample(s: RunState, e: Event) -> None:
    assert isinstance(e, SampleImages)
    # every process logs it (each makes its share of the prompts): one sampling round
    if e.step not in s.sample_steps:
        s.sample_steps.append(e.step)


def _model_saved(s: RunState, e: Event) -> None:
    s.saw_model_saved = True


def _dataset_length(s: RunState, e: Event) -> None:
    assert isinstance(e, DatasetLength)
    s.dataset_length = e.steps


def _image_folder(s: RunState, e: Event) -> None:
    assert isinstance(e, ImageFolder)
    if e not in s.image_folders:  # each process scans the dataset and says so
        s.image_folders.append(e)


def _config_written(s: RunState, e: Event) -> None:
    assert isinstance(e, ConfigWritten)
    s.config_written = e.path


def _warning(s: RunState, e: Event) -> None:
    assert isinstance(e, Warning)
    if e not in s.warnings:  # each process logs it once: the same warning, not two
        s.warnings.append(e)


def _no_data(s: RunState, e: Event) -> None:
    s.saw_no_data = True


def _failure(s: RunState, e: Event) -> None:
    assert isinstance(e, Failure)
    s.failures.append(e)


def _child_exit(s: RunState, e: Event) -> None:
    assert isinstance(e, ChildExit)
    s.child_returncode = e.returncode


_APPLY: dict[type, Callable[[RunState, Event], None]] = {
    StartupInfo: _startup,
    Phase: _phase,
    Progress: _progress,
    EpochStart: _epoch,
    CheckpointSaved: _checkpoint,
    CheckpointRemoved: _checkpoint_removed,
    StateSaved: _state,
    SampleImages: _sample,
    ModelSaved: _model_saved,
    DatasetLength: _dataset_length,
    ImageFolder: _image_folder,
    ConfigWritten: _config_written,
    Warning: _warning,
    NoDataFound: _no_data,
    Failure: _failure,
    ChildExit: _child_exit,
}
