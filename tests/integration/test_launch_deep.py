"""`launch` decodes every image before it makes anything (the deep check), once: images whose
size and mtime did not change since are not decoded again."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _project(tmp_path: Path) -> tuple[Path, Path]:
    images = make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    wrapper = tmp_path / "fake-python"
    replay = [sys.executable, str(FAKE), "--replay", str(LOGS / "run1_basic.stderr.txt")]
    wrapper.write_text("#!/bin/sh\nexec " + shlex.join(replay) + "\n")
    wrapper.chmod(0o755)
    plan = write_plan(
        tmp_path,
        base_plan(
            launch={"sd_scripts": str(sd), "python": str(wrapper)},
            rules={"allow": ["image-count", "steps-range"]},
        ),
    )
    return plan, images


def _verdicts(cache: Path) -> dict[str, list[object]]:
    (stored,) = (cache / "decoded").iterdir()
    images: dict[str, list[object]] = json.loads(stored.read_text())["images"]
    return images


def test_a_damaged_image_stops_launch_before_anything_is_made(
    tmp_path: Path, run_cli: Callable[..., Result], private_cache: Path
) -> None:
    plan, images = _project(tmp_path)
    data = (images / "img2.png").read_bytes()
    (images / "img2.png").write_bytes(data[: len(data) // 2])
    result = run_cli("launch", plan, "--plain")
    assert result.exit_code == 2, result.output
    assert "Pillow cannot decode img2.png" in result.output
    assert not (tmp_path / "runs").exists()
    assert _verdicts(private_cache)["img2.png"][2] == "OSError: image file is truncated"

    (images / "img2.png").write_bytes(data)  # repaired: only this one is decoded again
    result = run_cli("launch", plan, "--plain")
    assert result.exit_code == 0, result.output
    assert _verdicts(private_cache)["img2.png"][2] is None


def test_launch_of_a_made_run_folder_decodes_too(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    plan, images = _project(tmp_path)
    run_dir = json.loads(run_cli("make", plan, "--json").stdout)["run_dir"]
    data = (images / "img0.png").read_bytes()
    (images / "img0.png").write_bytes(data[: len(data) // 2])  # damaged after make
    result = run_cli("launch", run_dir, "--plain")
    assert result.exit_code == 2, result.output
    assert "Pillow cannot decode img0.png" in result.output
    assert not (Path(run_dir) / "train.log").exists()
