"""`model.base` must be a model: a Diffusers folder with its parts, a checkpoint file, or a Hub
reference. An empty folder, an image or a text file is an error in `check`, with the fix."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_diffusers, write_plan, write_png

from kohya_plan.inputs.checkpoint import not_a_checkpoint

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _safetensors(path: Path) -> None:
    header = json.dumps({"a.weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0")


def _empty_folder(root: Path) -> str:
    (root / "model").mkdir()
    return "model"


def _folder_of_files(root: Path) -> str:
    (root / "model").mkdir()
    _safetensors(root / "model" / "sd15.safetensors")
    (root / "model" / "readme.md").write_text("hi", encoding="utf-8")
    return "model"


def _no_unet(root: Path) -> str:
    folder = write_diffusers(root / "model")
    for item in (folder / "unet").iterdir():
        item.unlink()
    (folder / "unet").rmdir()
    return "model"


def _png(root: Path) -> str:
    write_png(root / "model.png", 8, 8, (1, 2, 3))
    return "model.png"


def _png_named_ckpt(root: Path) -> str:
    write_png(root / "model.ckpt", 8, 8, (1, 2, 3))
    return "model.ckpt"


def _text(root: Path) -> str:
    (root / "model.txt").write_text("stable-diffusion-v1-5\n", encoding="utf-8")
    return "model.txt"


def _empty_file(root: Path) -> str:
    (root / "model.ckpt").write_bytes(b"")
    return "model.ckpt"


NOT_MODELS: list[tuple[str, Callable[[Path], str], str]] = [
    ("empty folder", _empty_folder, "is an empty folder, not a model"),
    ("folder of files", _folder_of_files, "holds sd15.safetensors"),
    ("Diffusers folder without its U-Net", _no_unet, "lacks unet/"),
    ("an image", _png, "is a PNG image, not a model"),
    ("an image named .ckpt", _png_named_ckpt, "is a PNG image, not a model"),
    ("a text file", _text, "is a text file, not a model"),
    ("an empty file", _empty_file, "is an empty file, not a model"),
]


@pytest.mark.parametrize(("case", "build", "words"), NOT_MODELS, ids=[c[0] for c in NOT_MODELS])
def test_check_refuses_what_is_not_a_model(
    tmp_path: Path, run_cli: Any, case: str, build: Callable[[Path], str], words: str
) -> None:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    base = build(tmp_path)
    plan = write_plan(tmp_path, base_plan(model={"base": base}))
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 2, result.output
    assert "model.base" in result.output
    assert words in result.output, result.output
    assert "Diffusers folder (model_index.json" in result.output  # the fix
    assert "[model-not-a-model" in result.output or "model-not-a-model" in result.output


def _zip_ckpt(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + b"\0" * 60)


def _pickle_ckpt(path: Path) -> None:
    path.write_bytes(b"\x80\x02\x8a\x0a" + b"\0" * 60)


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("model.ckpt", _zip_ckpt),
        ("model.pt", _pickle_ckpt),
        ("model.safetensors", _safetensors),
        ("model.bin", _safetensors),  # safetensors under another name: sd-scripts torch.loads
    ],
)
def test_checkpoint_files_are_models(tmp_path: Path, name: str, build: Callable[..., None]) -> None:
    build(tmp_path / name)
    assert not_a_checkpoint(tmp_path / name) is None


def test_a_complete_diffusers_folder_is_a_model(tmp_path: Path, run_cli: Any) -> None:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512)] * 4)
    write_diffusers(tmp_path / "model")
    plan = write_plan(tmp_path, base_plan(model={"base": "model"}))
    result = run_cli("check", plan, "--no-hardware", "--json")
    assert "model-not-a-model" not in result.output
    assert json.loads(result.output)["model"]["kind"] == "diffusers"
