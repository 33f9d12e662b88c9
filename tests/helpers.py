"""Small builders for test plans and datasets (PNG files without Pillow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import toml
from sdlab import write_png

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

__all__ = ["base_plan", "make_images", "write_plan", "write_png"]


def make_images(
    folder: Path,
    sizes: Iterable[tuple[int, int]],
    *,
    caption: str | None = "testchar, red hair, smiling",
    stem: str = "img",
    ext: str = ".png",
    caption_ext: str = ".txt",
) -> Path:
    """Solid PNGs of the given sizes, each with a caption unless caption is None."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (w, h) in enumerate(sizes):
        write_png(folder / f"{stem}{index}{ext}", w, h, (40 * index % 256, 120, 200))
        if caption is not None:
            (folder / f"{stem}{index}{caption_ext}").write_text(caption, encoding="utf-8")
    return folder


def base_plan(**sections: Mapping[str, Any]) -> dict[str, Any]:
    """A valid plan for a dataset at ./data (model is a Hub id, so nothing is downloaded)."""
    plan: dict[str, Any] = {
        "model": {"base": "stable-diffusion-v1-5/stable-diffusion-v1-5", "clip_skip": 2},
        "dataset": {"train_dir": "data", "resolution": 512},
        "network": {"dim": 32, "alpha": 16},
        "optimizer": {"learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5},
        "training": {"epochs": 10},
        "output": {"dir": "out", "name": "testlora"},
        "launch": {"sd_scripts": "sd-scripts", "python": "/opt/sd/bin/python"},
    }
    for name, values in sections.items():
        plan.setdefault(name, {}).update(values)
    return plan


def write_plan(folder: Path, data: Mapping[str, Any], name: str = "plan.toml") -> Path:
    """Write plan data as TOML into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(toml.dumps(dict(data)), encoding="utf-8")
    return path
