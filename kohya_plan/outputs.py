"""The output folder: the LoRA files and states sd-scripts writes there, by its own names.

sd-scripts names a run's files ``NAME.EXT`` (the final file), ``NAME-000003.EXT`` (epoch 3),
``NAME-step00000100.EXT`` (step 100) and, with ``save_state``, folders ``NAME-000003-state``,
``NAME-step00000100-state`` and ``NAME-state`` (``train_util.get_epoch_ckpt_name``,
``get_step_ckpt_name``, ``get_last_ckpt_name`` and the ``*_STATE_NAME`` patterns). Everything here
matches those names exactly, so another output whose name merely starts with NAME is never
taken for this one's.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan.summary import LoraFile

if TYPE_CHECKING:
    from kohya_plan.plan import Plan

_EPOCH_FILE = re.compile(r"-(\d{6})$")
_STEP_FILE = re.compile(r"-step(\d{8})$")


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


def existing_outputs(plan: Plan) -> list[Path]:
    """LoRA files of this output name already in output.dir (what a new run would overwrite)."""
    out, name, ext = plan.output.dir, plan.output.name, plan.output.save_model_as
    if not out.is_dir():
        return []
    found = []
    for path in out.iterdir():
        if path.suffix == f".{ext}" and (path.stem == name or path.stem.startswith(name + "-")):
            found.append(path)
    return sorted(found)


def latest_state(plan: Plan) -> Path | None:
    """The newest `<name>*-state` folder sd-scripts saved in output.dir (save_state)."""
    out, name = plan.output.dir, plan.output.name
    if not out.is_dir():
        return None
    states = [
        p
        for p in out.iterdir()
        if p.is_dir()
        and p.name.startswith(name)
        and p.name.endswith("-state")
        and (p / "train_state.json").is_file()
    ]
    return max(states, key=lambda p: p.stat().st_mtime, default=None)


def epoch_copy(files: list[LoraFile], plan: Plan, epochs: int | None) -> str | None:
    """T29: the final file, which sd-scripts never numbers, also under its epoch's name."""
    final = next((f for f in files if f.final), None)
    if final is None or not epochs:
        return None
    source = Path(final.path)
    target = source.with_name(f"{plan.output.name}-{epochs:06d}{source.suffix}")
    if target.exists():
        return str(target) if target.stat().st_size == source.stat().st_size else None
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return str(target)
