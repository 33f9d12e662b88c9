"""A made sweep whose points look trained: train.log, sample images, LoRA files, summary.json.

For the comparison page's tests and its benchmark (no trainer runs): `make_sweep` makes the run
folders as `kohya-plan sweep` does, then each point gets what a finished run leaves — a log with
its epochs and a falling loss of its own, the sample images sd-scripts would name
(`<name>_e000003_01_<stamp>_<seed>.png`), one LoRA file per epoch (sparse: only the size counts)
and the summary `launch` writes.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import TYPE_CHECKING

import toml
from helpers import write_diffusers

from kohya_plan.loading import load_plan
from kohya_plan.trainlog.replay import replay_file
from kohya_plan.workflows.results import finish_summary
from kohya_plan.workflows.sweep import Sweep, make_sweep

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def png(size: int, seed: int) -> bytes:
    """An RGB PNG with a gradient and some noise (different for every seed; compresses about
    as a real sample does)."""
    rng = random.Random(seed)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    shift = rng.randrange(256)
    noise = rng.randbytes(size * size * 3)
    rows = []
    for y in range(size):
        base = bytes(
            v for x in range(size) for v in ((x * 255 // size + shift) % 256, y * 255 // size, 0)
        )
        row = bytes(
            (b & 0xE0) | (n & 0x1F) for b, n in zip(base, noise[y * size * 3 :], strict=False)
        )
        rows.append(b"\x00" + row)
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + chunk(b"IEND", b"")
    )


def write_plan(root: Path, *, epochs: int, prompts: int, size: int) -> Path:
    """A plan with a local model and tokenizer folder (no network), sampling every epoch."""
    data = root / "data" / "10_char"
    data.mkdir(parents=True)
    for i in range(4):
        (data / f"img{i}.png").write_bytes(png(16, i))
        (data / f"img{i}.txt").write_text("char, red hair", encoding="utf-8")
    write_diffusers(root / "model")  # check wants a real Diffusers layout
    tokenizer = root / "tok" / "openai_clip-vit-large-patch14"
    tokenizer.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (tokenizer / name).write_text("{}", encoding="utf-8")
    plan = root / "plan.toml"
    plan.write_text(
        toml.dumps(
            {
                "model": {"base": "model", "tokenizer_cache_dir": "tok"},
                "dataset": {"train_dir": "data", "resolution": 512},
                "network": {"dim": 32, "alpha": 16},
                "optimizer": {"unet_lr": 1e-4, "text_encoder_lr": 2e-5},
                "training": {"epochs": epochs, "save_every_n_epochs": 1},
                "sampling": {
                    "every_n_epochs": 1,
                    "prompts": [
                        f"char, pose {i} --w {size} --h {size} --d {40 + i}" for i in range(prompts)
                    ],
                },
                "output": {"dir": "out", "name": "cmp"},
                "launch": {"sd_scripts": "sd-scripts", "python": "/opt/sd/bin/python"},
            }
        ),
        encoding="utf-8",
    )
    return plan


def _log(epochs: int, per_epoch: int, start: float) -> str:
    total = epochs * per_epoch
    lines = [
        "running training / 学習開始",
        f"  num batches per epoch / 1epochのバッチ数: {per_epoch}",
        f"  num epochs / epoch数: {epochs}",
        f"  total optimization steps / 学習ステップ数: {total}",
    ]
    text = "\n".join(lines) + "\n"
    for step in range(1, total + 1):
        if (step - 1) % per_epoch == 0:
            text += f"\nepoch {(step - 1) // per_epoch + 1}/{epochs}\n"
        loss = start * (0.97 ** (step / per_epoch))
        frame = f"steps: {step * 100 // total:3d}%|##   | {step}/{total} [00:01<00:01,  1.00it/s"
        text += f"\r{frame}]\r{frame}, avr_loss={loss:.4f}]"
    return text + "\nmodel saved.\n"


def trained_sweep(
    root: Path,
    grid: Sequence[str] = ("optimizer.unet_lr=1e-4,5e-5", "network.dim=16,32"),
    *,
    epochs: int = 3,
    prompts: int = 2,
    size: int = 64,
    per_epoch: int = 4,
) -> Sweep:
    """A sweep over `grid` whose every point finished `epochs` epochs."""
    plan = write_plan(root, epochs=epochs, prompts=prompts, size=size)
    sweep = make_sweep(plan, grid)
    for point, run_dir in zip(sweep.points, sweep.run_dirs, strict=True):
        made = load_plan(run_dir / "plan.toml")
        name, out = made.output.name, made.output.dir
        (out / "sample").mkdir(parents=True, exist_ok=True)
        for epoch in range(1, epochs + 1):
            for index in range(prompts):
                stamp = f"202612011{epoch:02d}{index:03d}"
                file = out / "sample" / f"{name}_e{epoch:06d}_{index:02d}_{stamp}_{40 + index}.png"
                file.write_bytes(png(size, point.index * 1000 + epoch * 10 + index))
            target = out / (
                f"{name}-{epoch:06d}.safetensors" if epoch < epochs else f"{name}.safetensors"
            )
            with target.open("wb") as handle:
                handle.truncate(1_000_000 * (1 + point.index))
        (run_dir / "train.log").write_text(
            _log(epochs, per_epoch, 0.2 + 0.01 * point.index), encoding="utf-8"
        )
        finish_summary(
            run_dir,
            made,
            replay_file(run_dir / "train.log"),
            exit_status=0,
            wall_s=60.0,
            stop_reason=None,
            escalation=None,
            started_at=None,
            link_final=True,
        )
    return sweep
