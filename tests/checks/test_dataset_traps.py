"""What sd-scripts will choke on (or silently leave out), caught by `check` on real files:
images over Pillow's pixel limit, blank and BOM captions, captions without an image, nested
folders, images loose in train_dir, one folder twice, link loops. What sd-scripts really does
in each case is measured in tests/inputs/test_dataset_truth.py."""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, png_header, write_plan

from kohya_plan.inputs.scan import PIL_MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result

ALLOW = ["image-count", "steps-range"]


def _check(
    run_cli: Callable[..., Result], root: Path, *, allow: tuple[str, ...] = (), **sections: Any
) -> dict[str, list[dict[str, Any]]]:
    sections.setdefault("rules", {"allow": [*ALLOW, *allow]})
    plan = write_plan(root, base_plan(**sections))
    result = run_cli("check", plan, "--json", "--no-hardware")
    assert result.exit_code in (0, 2), result.output
    doc = json.loads(result.stdout)
    found: dict[str, list[dict[str, Any]]] = {}
    for severity in ("errors", "advice"):
        for item in doc[severity]:
            found.setdefault(item["id"], []).append({**item, "severity": severity.rstrip("s")})
    return found


def _data(root: Path, name: str = "5_testchar", n: int = 2) -> Path:
    return make_images(root / "data" / name, [(512, 512)] * n)


@pytest.mark.parametrize(
    ("pixels_side", "rule"),
    [(9459, None), (9460, "image-large"), (13377, "image-large"), (13378, "image-too-large")],
)
def test_pillow_pixel_limit_from_the_header(
    tmp_path: Path, run_cli: Callable[..., Result], pixels_side: int, rule: str | None
) -> None:
    """9459² = 89,472,681 ≤ 89,478,485 < 9460²; 13377² ≤ 2 × limit < 13378²."""
    folder = _data(tmp_path)
    png_header(folder / "huge.png", pixels_side, pixels_side)
    (folder / "huge.txt").write_text("testchar", encoding="utf-8")
    found = _check(run_cli, tmp_path)
    hits = {r for r in ("image-large", "image-too-large") if r in found}
    assert hits == ({rule} if rule else set())
    if rule:
        (item,) = found[rule]
        assert f"{pixels_side * pixels_side:,} pixels" in item["message"]
        assert f"{PIL_MAX_IMAGE_PIXELS:,}" in item["message"]
        word = "DecompressionBombError" if rule == "image-too-large" else "DecompressionBombWarning"
        assert word in item["message"]
        assert item["severity"] == ("error" if rule == "image-too-large" else "advice")


def test_blank_and_bom_captions(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = _data(tmp_path, n=4)
    (folder / "img0.txt").write_text("  \t \nsecond line is ignored", encoding="utf-8")
    (folder / "img1.txt").write_text("\ufeff", encoding="utf-8")
    (folder / "img2.txt").write_text("\ufefftestchar, red hair", encoding="utf-8")
    found = _check(run_cli, tmp_path)
    (blank,) = found["blank-caption"]
    assert "img0.png, img1.png" in blank["message"]
    assert "empty caption" in blank["message"]
    assert "without a warning" in blank["message"]
    assert blank["severity"] == "error"
    (bom,) = found["caption-bom"]
    assert "img1.png, img2.png" in bom["message"]
    assert "tokenizer drops it" in bom["message"]
    assert bom["severity"] == "advice"
    assert "empty-caption" not in found  # that one is a zero-length file: sd-scripts asserts


def test_blank_captions_can_be_waived(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = _data(tmp_path)
    (folder / "img0.txt").write_text(" \n", encoding="utf-8")
    plan = write_plan(tmp_path, base_plan(rules={"allow": [*ALLOW, "blank-caption"]}))
    assert run_cli("check", plan, "--no-hardware").exit_code == 0


def test_orphan_captions_and_nested_folders(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = _data(tmp_path)
    (folder / "gone.txt").write_text("testchar", encoding="utf-8")
    make_images(folder / "originals" / "deeper", [(64, 64)] * 3, caption=None)
    make_images(folder / "empty-but-text", [], caption=None)
    (folder / "empty-but-text" / "notes.md").write_text("no images here")
    make_images(folder / ".thumbnails", [(64, 64)], caption=None)
    found = _check(run_cli, tmp_path)
    (orphans,) = found["orphan-captions"]
    assert "gone.txt" in orphans["message"]
    assert "ignores them" in orphans["message"]
    (nested,) = found["nested-folders"]
    assert "5_testchar/originals holds 3 images that sd-scripts does not read" in nested["message"]


def test_images_loose_in_train_dir_beside_repeat_folders(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    _data(tmp_path)
    make_images(tmp_path / "data", [(512, 512)] * 3, stem="loose")
    found = _check(run_cli, tmp_path)
    (loose,) = found["loose-images"]
    assert loose["field"] == "dataset.train_dir"
    assert "3 images lie in" in loose["message"]
    assert "not trained" in loose["message"]
    assert "dataset-trap" not in found
    plan = write_plan(tmp_path, base_plan(rules={"allow": [*ALLOW, "loose-images"]}))
    assert run_cli("check", plan, "--no-hardware").exit_code == 0


def test_one_folder_listed_twice(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = _data(tmp_path)
    same = _check(
        run_cli, tmp_path, dataset={"subsets": [{"image_dir": str(folder), "repeats": 2}]}
    )
    (item,) = same["duplicate-folder"]
    assert item["field"] == "dataset.subsets[0].image_dir"
    assert "listed twice" in item["message"]
    assert "ignores the second" in item["message"]


def test_one_folder_as_train_and_reg_through_a_link(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    folder = _data(tmp_path)
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "1_person").symlink_to(folder, target_is_directory=True)
    found = _check(run_cli, tmp_path, dataset={"reg_dir": "reg"})
    (item,) = found["duplicate-folder"]
    assert item["field"] == "dataset.reg_dir"
    assert "same folder" in item["message"]
    assert "as training and as regularization images" in item["message"]


def _with_timeout(fn: Callable[[], object], seconds: float = 30) -> object:
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the scan did not finish: it follows a link loop"
    return box[0]


def test_link_loops_do_not_hang_the_scan(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = _data(tmp_path)
    (folder / "up").symlink_to("..", target_is_directory=True)  # 5_testchar/up -> data
    (folder / "self").symlink_to(folder, target_is_directory=True)
    os.symlink("loop.png", folder / "loop.png")  # a link to itself: ELOOP
    (tmp_path / "data" / "3_again").symlink_to(tmp_path / "data", target_is_directory=True)
    found = _with_timeout(lambda: _check(run_cli, tmp_path))
    assert isinstance(found, dict)
    (unreadable,) = found["unreadable-image"]
    assert "loop.png" in unreadable["message"]
    # the loops lead back to folders sd-scripts does read: nothing is left out, nothing is
    # counted twice (3_again is data itself, up/ is data, self/ is 5_testchar)
    assert "nested-folders" not in found
    make_images(folder / "up" / "3_again" / "5_testchar" / "deep", [(64, 64)] * 2, caption=None)
    found = _with_timeout(lambda: _check(run_cli, tmp_path))
    assert isinstance(found, dict)
    (nested,) = found["nested-folders"]
    assert "5_testchar/deep holds 2 images" in nested["message"]
