"""The output folder: the LoRA files and states sd-scripts writes there, by its own names.

sd-scripts names a run's files ``NAME.EXT`` (the final file), ``NAME-000003.EXT`` (epoch 3),
``NAME-step00000100.EXT`` (step 100) and, with ``save_state``, folders ``NAME-000003-state``,
``NAME-step00000100-state`` and ``NAME-state`` (``train_util.get_epoch_ckpt_name``,
``get_step_ckpt_name``, ``get_last_ckpt_name`` and the ``*_STATE_NAME`` patterns). Everything here
matches those names exactly, so another output whose name merely starts with NAME
(``NAME-v2.safetensors``) is never taken for this one's.

A state folder is complete once accelerate wrote ``random_states_0.pkl``, its last file
(``Accelerator.save_state``: model, optimizer, scheduler, then the RNG states): a run stopped
while saving leaves ``train_state.json`` without it, and sd-scripts cannot resume from that.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.summary import LoraFile

if TYPE_CHECKING:
    from kohya_plan.plan import Plan

_EPOCH_FILE = re.compile(r"-(\d{6})$")
_STEP_FILE = re.compile(r"-step(\d{8})$")
# The part after NAME of a state folder: -000003-state, -step00000100-state, -state.
_STATE_DIR = re.compile(r"(?:-(\d{6})|-step(\d{8}))?-state")
_STEP_STATE = re.compile(r"-step\d{8}-state$")
STATE_FILE = "train_state.json"
"""sd-scripts' own record in a state folder: {"current_epoch": E, "current_step": S}."""
STATE_LAST_FILE = "random_states_0.pkl"
"""What accelerate writes last into a state folder: its presence marks a complete state."""
OUTPUT_LOCK = ".{name}.kohya-plan.lock"
"""The lock file a launch holds in output.dir for its output name (see run/locks.py)."""


def classify_file(path: Path, output_name: str) -> LoraFile | None:
    """Recognise sd-scripts' file names: <name>-000003 (epoch), <name>-step00000100, <name>."""
    stem = path.stem
    if not stem.startswith(output_name):
        return None
    rest = stem[len(output_name) :]
    size = path.stat().st_size
    if rest == "":
        return LoraFile(str(path), size, final=True)
    if match := _EPOCH_FILE.fullmatch(rest):
        return LoraFile(str(path), size, epoch=int(match.group(1)))
    if match := _STEP_FILE.fullmatch(rest):
        return LoraFile(str(path), size, step=int(match.group(1)))
    return None


def lora_files(
    output_dir: Path, output_name: str, extension: str, since: float | None
) -> list[LoraFile]:
    """The run's LoRA files in output_dir (written at or after `since`), epoch order."""
    found = []
    if not output_dir.is_dir():
        return []
    for path in output_dir.glob(f"{glob_escape(output_name)}*.{extension}"):
        if since is not None and path.stat().st_mtime < since - 1:
            continue
        item = classify_file(path, output_name)
        if item is not None:
            found.append(item)
    return sorted(found, key=lambda f: (f.final, f.epoch or 0, f.step or 0))


def glob_escape(text: str) -> str:
    """Escape glob's special characters in a literal part of a pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def is_state_name(folder_name: str, output_name: str) -> bool:
    """Whether `folder_name` is one of sd-scripts' state folder names for this output."""
    if not folder_name.startswith(output_name):
        return False
    return _STATE_DIR.fullmatch(folder_name[len(output_name) :]) is not None


def existing_outputs(plan: Plan) -> list[Path]:
    """Files and state folders of this output name in output.dir, by sd-scripts' exact names.

    These are what a new run of this output could overwrite: the final file, epoch- and
    step-numbered files of the plan's format, and state folders.
    """
    out, name, ext = plan.output.dir, plan.output.name, plan.output.save_model_as
    if not out.is_dir():
        return []
    found = []
    for path in out.iterdir():
        if path.is_dir():
            if is_state_name(path.name, name):
                found.append(path)
        elif path.suffix == f".{ext}" and classify_file(path, name) is not None:
            found.append(path)
    return sorted(found)


def break_links(paths: list[Path]) -> list[Path]:
    """Give every hard-linked file in `paths` an inode of its own (content unchanged).

    sd-scripts rewrites ``NAME.safetensors`` in place; if another name shares its inode (an
    epoch copy made by an older kohya-plan with a hard link, or by hand), that other file would
    change too. Returns the files that were unlinked from their twins.
    """
    broken = []
    for path in paths:
        try:
            if path.is_dir() or path.stat().st_nlink < 2:
                continue
        except OSError:
            continue
        _copy_atomically(path, path)
        broken.append(path)
    return broken


def _copy_atomically(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(source, tmp)
        tmp.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@dataclass(frozen=True)
class SavedState:
    """A complete state folder and where it stands (sd-scripts' train_state.json)."""

    path: Path
    epoch: int | None
    step: int | None
    by_step: bool
    """A `-stepNNNNNNNN-state` folder (saved mid-epoch by save_every_n_steps)."""


def read_state(path: Path) -> SavedState | None:
    """The state in `path`, or None when it is not a complete sd-scripts state folder."""
    if not (path / STATE_FILE).is_file() or not (path / STATE_LAST_FILE).is_file():
        return None
    try:
        data = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    epoch, step = data.get("current_epoch"), data.get("current_step")
    return SavedState(
        path=path,
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        by_step=_STEP_STATE.search(path.name) is not None,
    )


def incomplete_state_reason(path: Path) -> str | None:
    """Why `path` cannot be resumed from (None when it can)."""
    if not path.is_dir():
        return f"{path} is not a folder"
    if not (path / STATE_FILE).is_file():
        return f"{path} is not an sd-scripts state folder (no {STATE_FILE})"
    if not (path / STATE_LAST_FILE).is_file():
        return (
            f"{path} is cut short (no {STATE_LAST_FILE}, which accelerate writes last): the run "
            "was stopped while saving it, and sd-scripts cannot resume from it"
        )
    if read_state(path) is None:
        return f"{path}/{STATE_FILE} cannot be read"
    return None


def latest_state(plan: Plan) -> Path | None:
    """The newest COMPLETE state folder sd-scripts saved for this output name (save_state)."""
    out, name = plan.output.dir, plan.output.name
    if not out.is_dir():
        return None
    states = [
        p
        for p in out.iterdir()
        if p.is_dir() and is_state_name(p.name, name) and read_state(p) is not None
    ]
    return max(states, key=lambda p: p.stat().st_mtime, default=None)


def epoch_copy(files: list[LoraFile], plan: Plan, epochs: int | None) -> str | None:
    """T29: the final file, which sd-scripts never numbers, also under its epoch's name.

    A copy, never a link: the next run of this output rewrites ``NAME.EXT`` in place, and a
    hard-linked "copy" would change with it. Written to a temporary sibling and renamed, so a
    reader never sees half of it.
    """
    final = next((f for f in files if f.final), None)
    if final is None or not epochs:
        return None
    source = Path(final.path)
    target = source.with_name(f"{plan.output.name}-{epochs:06d}{source.suffix}")
    _copy_atomically(source, target)
    return str(target)
