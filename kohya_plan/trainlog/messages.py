"""What one sd-scripts message means: the classifier behind :class:`~.records.LogParser`.

A message is the text of one log record (its wrapped lines joined) or one plain line. It is
looked up by its first word in a table of handlers; each handler either turns it into events
(start-up numbers, epochs, saved files, warnings, failures) or declines. Bilingual
``English / 日本語`` messages are matched on their English half. Pure: no I/O, stdlib only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kohya_plan.families import FAMILIES
from kohya_plan.trainlog.events import (
    BATCH_SIZE,
    BATCHES_PER_EPOCH,
    EPOCHS,
    GRAD_ACCUM_STEPS,
    PHASE_ACCELERATOR,
    PHASE_DATASET,
    PHASE_LATENTS,
    PHASE_MODEL,
    PHASE_NETWORK,
    PHASE_OPTIMIZER,
    PHASE_TEXT_ENCODER,
    PHASE_TRAINING,
    REG_IMAGES,
    TOTAL_STEPS,
    TRAIN_IMAGES,
    VALIDATION_IMAGES,
    CheckpointRemoved,
    CheckpointSaved,
    ConfigWritten,
    DatasetLength,
    EpochStart,
    Event,
    Failure,
    ImageFolder,
    ModelSaved,
    NoDataFound,
    Phase,
    SampleImages,
    StartupInfo,
    StateSaved,
    Warning,
)

if TYPE_CHECKING:
    from collections.abc import Callable

_EPOCH = re.compile(r"epoch (\d+)/(\d+)")
_LAST_INT = re.compile(r"(\d+)\D*$")
_FOUND_DIR = re.compile(r"found directory (.*) contains (\d+) image files", re.DOTALL)
_CAPTIONS = re.compile(r"No caption file found for (\d+) images")
_QUOTED = re.compile(r"'([^']*)'")

_MISSING_MODEL = (
    "is neither a valid local path nor a valid repo id",
    "model is not found as a file or in Hugging Face",
    "is not a local folder and is not a valid model identifier",
    "HFValidationError",
)
_DATASET_ERRORS = (
    "caption file is empty",
    "it must be divisible by",  # bucket_reso_steps (64 / SDXL 32 / Flux 64)
    "image too large",
    "file not found / ",
    "Invalid user config",
    "MultipleInvalid",
    "not supported config file format",
    "illegal char in file",
)
# fp16 where there is no GPU (the CPU lab's runs: mixed fp16, full_fp16 without a GradScaler)
_PRECISION_ERRORS = (
    "expected m1 and m2 to have the same dtype",
    "object has no attribute '_unscale_grads_'",
    "fp16 mixed precision requires a GPU",
)
# gloo/NCCL when another process of the run went away (its own log holds the cause)
_PEER_LOST = (
    "Connection closed by peer",
    "Connection reset by peer",
    "NCCL communicator was aborted",
)
# torch's rendezvous when a machine never joined (machine 0: the store waits for clients; the
# others: connecting to machine 0)
_RENDEZVOUS = ("torch.distributed.DistStoreError", "torch.distributed.DistNetworkError")
# sd-scripts raises `ImportError("No <package> / ...")` when an optimizer's package is missing.
_OPTIMIZER_PACKAGES = frozenset(
    ("bitsandbytes", "dadaptation", "lion_pytorch", "Prodigy", "schedulefree", "prodigyplus")
)

# `ModuleNotFoundError: No module named 'torch'`; python -m: `No module named accelerate.x`
MODULE_NOT_FOUND = re.compile(r"No module named '?([\w.]+)'?")
_OPTIMIZER_MODULES = _OPTIMIZER_PACKAGES | {"prodigyopt"}

# Start-up phases, by the first word of the message (a cheap dict lookup rejects most lines).
# Short prefixes: a rich record's first line is checked as soon as it arrives, before the rest.
# These are train_network.py's own; each model family adds its start-up lines
# (`Family.startup`: "Building Flux model", "U-Net converted to original U-Net", …).
_COMMON_PHASES: tuple[tuple[str, str], ...] = (
    ("prepare images.", PHASE_DATASET),
    ("prepare optimizer", PHASE_OPTIMIZER),
    ("preparing accelerator", PHASE_ACCELERATOR),
    ("loading model for process", PHASE_MODEL),
    ("caching latents", PHASE_LATENTS),
    ("caching Text Encoder", PHASE_TEXT_ENCODER),
    ("caching text encoder", PHASE_TEXT_ENCODER),
    ("import network module", PHASE_NETWORK),
    ("create LoRA network", PHASE_NETWORK),
    ("running training", PHASE_TRAINING),
)


def _phase_table() -> dict[str, tuple[tuple[str, str], ...]]:
    table: dict[str, list[tuple[str, str]]] = {}
    family_lines = [line for f in FAMILIES.values() for line in f.startup]
    for prefix, phase in (*_COMMON_PHASES, *family_lines):
        entries = table.setdefault(prefix.partition(" ")[0], [])
        if (prefix, phase) not in entries:
            entries.append((prefix, phase))
    return {word: tuple(entries) for word, entries in table.items()}


PHASES: dict[str, tuple[tuple[str, str], ...]] = _phase_table()

# English labels of the `running training` block (stdout), see sd-scripts train_network.py.
_STARTUP_LABELS = {
    "num train images * repeats": TRAIN_IMAGES,
    "num validation images * repeats": VALIDATION_IMAGES,
    "num reg images": REG_IMAGES,
    "num batches per epoch": BATCHES_PER_EPOCH,
    "num epochs": EPOCHS,
    "batch size per device": BATCH_SIZE,
    "gradient accumulation steps": GRAD_ACCUM_STEPS,
    "total optimization steps": TOTAL_STEPS,
}


def _english(msg: str) -> str:
    """The English half of a bilingual `English / 日本語` message."""
    return msg.split(" / ", 1)[0].removesuffix(" /")


def _after_label(msg: str) -> str:
    """The value after `label / ラベル: value` (or `label: value`)."""
    _, sep, japanese = msg.partition(" / ")
    text = japanese if sep else msg
    _, sep, value = text.partition(": ")
    return value.strip() if sep else ""


def exception_kind(line: str) -> str:
    """Failure kind for a traceback's final exception line."""
    if "OutOfMemoryError" in line or "CUDA out of memory" in line:
        return "cuda_oom"
    if any(s in line for s in _MISSING_MODEL):
        return "missing_model"
    if line.startswith(("ModuleNotFoundError:", "ImportError: No module named")):
        found = MODULE_NOT_FOUND.search(line)
        top = found.group(1).split(".")[0] if found else ""
        return "optimizer_missing" if top in _OPTIMIZER_MODULES else "missing_package"
    if line.startswith("ImportError: No "):
        package = line[len("ImportError: No ") :].partition(" ")[0]
        if package in _OPTIMIZER_PACKAGES:
            return "optimizer_missing"
    if any(s in line for s in _DATASET_ERRORS):
        return "dataset"
    if any(s in line for s in _PRECISION_ERRORS):
        return "precision"
    if line.startswith("KeyboardInterrupt") or "SignalException: Process" in line:
        return "interrupted"
    if any(s in line for s in _PEER_LOST):
        return "peer_lost"
    if line.startswith(_RENDEZVOUS) or "clients joined" in line:
        return "rendezvous_timeout"
    if "Tried to launch distributed communication on port" in line:
        return "port_in_use"
    return "traceback"


def argparse_options(error: str) -> tuple[str, ...]:
    """The options an argparse error names (`unrecognized arguments: --network_dimm 4`)."""
    found: dict[str, None] = {}
    for token in error.replace("/", " ").split():
        token = token.strip(",:'\"")
        if len(token) > 1 and token[0] == "-" and (token[1] == "-" or token[1].isalpha()):
            found[token] = None
    return tuple(found)


class MessageReader:
    """The message-level half of the parser: phases, the handler table, failures, warnings."""

    def __init__(self, *, records: bool = False) -> None:
        self._records = records
        self._out: list[Event] = []
        self._phase = ""
        self._failed = False
        self._suppress = 0  # WARNING records still expected to list images without captions

    def _phase_of(self, s: str) -> bool:
        cands = PHASES.get(s.partition(" ")[0])
        if cands is None:
            return False
        for prefix, name in cands:
            if s.startswith(prefix):
                if name != self._phase:
                    self._phase = name
                    self._out.append(Phase(name))
                return True
        return False

    def _message(self, msg: str, level: str | None) -> None:
        handler = HANDLERS.get(msg.partition(" ")[0])
        if handler is not None and handler(self, msg):
            return
        if level is None or level == "DEBUG":
            return
        if level == "INFO":
            self._suppress = 0
        elif level == "WARNING":
            if self._suppress:
                self._suppress -= 1  # one image path of "No caption file found for N images"
                return
            self._out.append(Warning("generic", _english(msg)))
        else:
            self._out.append(Warning("error", _english(msg)))

    def _fail(
        self,
        kind: str,
        message: str,
        detail: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        rank: int | None = None,
    ) -> None:
        self._failed = True
        self._out.append(Failure(kind, message, detail, options, rank))

    def _warn(self, kind: str, msg: str, count: int | None = None, name: str | None = None) -> bool:
        self._out.append(Warning(kind, _english(msg), count, name))
        return True

    # Handlers, looked up by the message's first word; True when the message was theirs.

    def _h_startup(self, msg: str) -> bool:
        label, sep, rest = msg.partition(" / ")
        name = _STARTUP_LABELS.get(label)
        if name is None or not sep:
            return False
        # "... / 勾配を合計するステップ数 = 1" uses "=", the others ":".
        value = rest.rpartition(" = " if "=" in rest else ":")[2].strip()
        first = value.partition(",")[0].strip()
        if not first.isdigit():
            return False
        self._out.append(StartupInfo(name, int(first), value))
        return True

    def _h_epoch(self, msg: str) -> bool:
        m = _EPOCH.fullmatch(msg)
        if m is None:
            return False
        self._out.append(EpochStart(int(m.group(1)), int(m.group(2))))
        return True

    def _h_saving(self, msg: str) -> bool:
        if msg.startswith("saving checkpoint: "):
            self._out.append(CheckpointSaved(msg[len("saving checkpoint: ") :].strip()))
            return True
        return False

    def _h_removing(self, msg: str) -> bool:
        if msg.startswith("removing old checkpoint: "):
            self._out.append(CheckpointRemoved(msg[len("removing old checkpoint: ") :].strip()))
            return True
        return False

    def _h_saving_state(self, msg: str) -> bool:
        if msg.startswith("Saving current state to "):
            self._out.append(StateSaved(msg[len("Saving current state to ") :].strip()))
            return True
        return False

    def _h_model(self, msg: str) -> bool:
        if msg.startswith("model saved."):
            self._out.append(ModelSaved())
            return True
        if msg.startswith("model is not found as a file or in Hugging Face"):
            self._fail("missing_model", _english(msg), (msg,))
            return True
        return False

    def _h_generating(self, msg: str) -> bool:
        if msg.startswith("generating sample images at"):
            m = _LAST_INT.search(msg)
            if m is not None:
                self._out.append(SampleImages(int(m.group(1))))
                return True
        return False

    def _h_found(self, msg: str) -> bool:
        m = _FOUND_DIR.match(msg)
        if m is None:
            return False
        self._out.append(ImageFolder(m.group(1), int(m.group(2))))
        return True

    def _h_total(self, msg: str) -> bool:
        if msg.startswith("Total dataset length (steps)"):
            m = _LAST_INT.search(msg)
            if m is not None:
                self._out.append(DatasetLength(int(m.group(1))))
                return True
        return False

    def _h_saved(self, msg: str) -> bool:
        if msg.startswith("Saved config file"):
            self._out.append(ConfigWritten(_after_label(msg)))
            return True
        return False

    def _h_no_upper(self, msg: str) -> bool:
        if msg.startswith("No caption file found for"):
            m = _CAPTIONS.match(msg)
            count = int(m.group(1)) if m is not None else None
            # sd-scripts then logs up to 5 image paths (and "... and N more") as WARNINGs.
            self._suppress = min(count, 6) if count is not None else 0
            return self._warn("no_captions", msg, count)
        if msg.startswith("No data found."):
            self._out.append(NoDataFound(_english(msg)))
            return True
        if msg.startswith("No prompt file"):
            return self._warn("no_prompt_file", msg, name=_after_label(msg))
        return False

    def _h_no(self, msg: str) -> bool:
        if msg.startswith("no regularization images"):
            return self._warn("no_reg_images", msg)
        return False

    def _h_some(self, msg: str) -> bool:
        if msg.startswith("some of reg images are not used"):
            return self._warn("reg_images_unused", msg)
        return False

    def _h_ignore(self, msg: str) -> bool:
        if msg.startswith("ignore directory without repeats"):
            return self._warn("ignored_folder", msg, name=_after_label(msg))
        if msg.startswith(("ignore subset with", "ignore duplicated subset with")):
            m = _QUOTED.search(msg)
            return self._warn("ignored_folder", msg, name=m.group(1) if m else None)
        return False

    def _h_not(self, msg: str) -> bool:
        if msg.startswith("not directory: "):
            return self._warn("ignored_folder", msg, name=msg[len("not directory: ") :].strip())
        return False

    def _h_ignoring(self, msg: str) -> bool:
        prefix = "ignoring the following options because config file is found: "
        if msg.startswith(prefix):
            options = _english(msg)[len(prefix) :].strip()
            return self._warn("dataset_config_overrides", msg, name=options)
        return False

    def _h_learning(self, msg: str) -> bool:
        if msg.startswith("learning rate is too low"):
            return self._warn("lr_too_low", msg)
        return False

    def _h_nan(self, msg: str) -> bool:
        if msg.startswith("NaN found in latents"):
            return self._warn("nan_latents", msg)
        return False

    def _h_invalid(self, msg: str) -> bool:
        if msg.startswith("Invalid user config"):
            self._fail("dataset", _english(msg), (msg,))
            return True
        return False

    def _h_illegal(self, msg: str) -> bool:
        if msg.startswith("illegal char in file (not UTF-8)"):
            self._fail("dataset", _english(msg), (msg,))
            return True
        return False

    def _h_neither(self, msg: str) -> bool:
        # One per image; the "No caption file found for N images" summary that follows counts them.
        return msg.startswith("neither caption file nor class tokens are found")


HANDLERS: dict[str, Callable[[MessageReader, str], bool]] = {
    "num": MessageReader._h_startup,
    "batch": MessageReader._h_startup,
    "gradient": MessageReader._h_startup,
    "total": MessageReader._h_startup,
    "epoch": MessageReader._h_epoch,
    "saving": MessageReader._h_saving,
    "removing": MessageReader._h_removing,
    "Saving": MessageReader._h_saving_state,
    "model": MessageReader._h_model,
    "generating": MessageReader._h_generating,
    "found": MessageReader._h_found,
    "Total": MessageReader._h_total,
    "Saved": MessageReader._h_saved,
    "No": MessageReader._h_no_upper,
    "no": MessageReader._h_no,
    "some": MessageReader._h_some,
    "ignore": MessageReader._h_ignore,
    "not": MessageReader._h_not,
    "ignoring": MessageReader._h_ignoring,
    "learning": MessageReader._h_learning,
    "NaN": MessageReader._h_nan,
    "Invalid": MessageReader._h_invalid,
    "illegal": MessageReader._h_illegal,
    "neither": MessageReader._h_neither,
}
