"""The output folder by sd-scripts' exact names: what a launch would overwrite, which states can
be resumed, and the T29 epoch copy of the final file (an independent file)."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import base_plan, write_plan

from kohya_plan.loading import load_plan
from kohya_plan.outputs import (
    break_links,
    epoch_copy,
    existing_outputs,
    incomplete_state_reason,
    latest_state,
    lora_files,
    read_state,
)


def _plan(tmp_path: Path, name: str = "mylora"):  # type: ignore[no-untyped-def]
    return load_plan(write_plan(tmp_path, base_plan(output={"dir": "out", "name": name})))


def _state(folder: Path, epoch: int, step: int, *, complete: bool = True) -> Path:
    folder.mkdir(parents=True)
    record = f'{{"current_epoch": {epoch}, "current_step": {step}}}'
    (folder / "train_state.json").write_text(record)
    if complete:
        (folder / "random_states_0.pkl").write_bytes(b"rng")
    return folder


def test_existing_outputs_are_sd_scripts_names_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ours = [
        "mylora.safetensors",
        "mylora-000001.safetensors",
        "mylora-step00000100.safetensors",
    ]
    others = [
        "mylora-v2.safetensors",  # another output whose name starts with ours
        "mylora-v2-000001.safetensors",
        "mylora-1.safetensors",
        "mylora-0000001.safetensors",
        "mylora.ckpt",  # another format: sd-scripts writes .safetensors here
        "mylora2.safetensors",
        "mylora_step00000100.safetensors",
    ]
    for name in ours + others:
        (out / name).write_bytes(b"x")
    for name in ("mylora-state", "mylora-000002-state", "mylora-step00000010-state"):
        (out / name).mkdir()
    for name in ("mylora-v2-state", "mylora-v2-000001-state", "mylora-000002-state-old"):
        (out / name).mkdir()
    found = {p.name for p in existing_outputs(_plan(tmp_path))}
    assert found == {*ours, "mylora-state", "mylora-000002-state", "mylora-step00000010-state"}


def test_latest_state_takes_only_complete_states(tmp_path: Path) -> None:
    out = tmp_path / "out"
    older = _state(out / "mylora-000001-state", 1, 8)
    os.utime(older, (1_000, 1_000))
    # Newer, but cut short while saving: train_state.json without random_states_0.pkl.
    _state(out / "mylora-000002-state", 2, 16, complete=False)
    # Another output's state, newer still.
    _state(out / "mylora-v2-000003-state", 3, 24)
    assert latest_state(_plan(tmp_path)) == older
    reason = incomplete_state_reason(out / "mylora-000002-state")
    assert reason is not None
    assert "random_states_0.pkl" in reason


def test_read_state_knows_step_states(tmp_path: Path) -> None:
    step = read_state(_state(tmp_path / "x-step00000100-state", 3, 100))
    epoch = read_state(_state(tmp_path / "x-000002-state", 2, 16))
    final = read_state(_state(tmp_path / "x-state", 4, 32))
    assert step is not None
    assert epoch is not None
    assert final is not None
    assert (step.by_step, step.epoch, step.step) == (True, 3, 100)
    assert (epoch.by_step, epoch.epoch) == (False, 2)
    assert not final.by_step


def test_epoch_copy_is_independent_of_the_final_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    final = out / "mylora.safetensors"
    final.write_bytes(b"run one")
    copy = epoch_copy(lora_files(out, "mylora", "safetensors", None), plan, 2)
    assert copy == str(out / "mylora-000002.safetensors")
    # The next run of this output rewrites NAME.safetensors in place (open "wb", same inode),
    # as sd-scripts' safetensors save does: run one's epoch-2 file must not change.
    with final.open("r+b") as handle:
        handle.truncate(0)
        handle.write(b"run two")
    assert Path(copy).read_bytes() == b"run one"


def test_epoch_copy_replaces_a_stale_copy_of_another_size(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mylora.safetensors").write_bytes(b"new final file")
    (out / "mylora-000003.safetensors").write_bytes(b"old")
    copy = epoch_copy(lora_files(out, "mylora", "safetensors", None), plan, 3)
    assert copy is not None
    assert Path(copy).read_bytes() == b"new final file"


def test_break_links_gives_a_hard_linked_file_its_own_inode(tmp_path: Path) -> None:
    final = tmp_path / "mylora.safetensors"
    final.write_bytes(b"run one")
    twin = tmp_path / "mylora-000002.safetensors"
    os.link(final, twin)  # what kohya-plan up to 0.x made as the epoch copy
    lone = tmp_path / "mylora-000001.safetensors"
    lone.write_bytes(b"epoch 1")
    assert break_links([final, lone]) == [final]
    with final.open("r+b") as handle:
        handle.write(b"RUN TWO")
    assert twin.read_bytes() == b"run one"
    assert final.stat().st_nlink == twin.stat().st_nlink == 1
