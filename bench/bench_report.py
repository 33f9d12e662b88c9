"""Time `write_report` on a big synthetic run: 20 epochs × 10 prompts = 200 sample images
(256×256 PNGs, noisy like real samples), a 10,000-step TensorBoard event file and train.log.

Run: .venv/bin/python bench/bench_report.py [--steps 10000] [--epochs 20] [--prompts 10]
       [--size 256] [--repeat 3]

The run folder is made in a temporary folder the way `make` makes it (check_plan + make_run);
summary.json and manifest.json come from launching.finish_summary. Prints the median (and
every) time of write_report, its parts (gather: TensorBoard, log, images; render; write) and
the report's size. Target: median ≤ 2 s.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import toml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kohya_plan.report as report  # noqa: E402
from kohya_plan.loading import load_plan  # noqa: E402
from kohya_plan.planning import check_plan, make_run  # noqa: E402
from kohya_plan.trainlog.replay import replay_file  # noqa: E402
from kohya_plan.trainlog.tensorboard import read_scalars  # noqa: E402
from kohya_plan.workflows.results import finish_summary  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


def png(width: int, height: int, seed: int) -> bytes:
    """An RGB PNG with a gradient and per-pixel noise (compresses about like a real sample)."""
    rng = random.Random(seed)
    noise = rng.randbytes(width * height * 3)
    rows = []
    for y in range(height):
        base = bytes(
            v
            for x in range(width)
            for v in ((x + seed * 7) % 256, (y + seed * 13) % 256, (x + y) // 2 % 256)
        )
        row = bytes(
            (b & 0xE0) | (n & 0x1F) for b, n in zip(base, noise[y * width * 3 :], strict=False)
        )
        rows.append(b"\x00" + row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + chunk(b"IEND", b"")
    )


def loss_at(step: int) -> float:
    return 0.12 + 0.05 * math.exp(-step / 3000) + 0.03 * math.sin(step * 0.7)


def write_events(folder: Path, steps: int, epochs: int) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True)
    writer = EventFileWriter(str(folder), max_queue_size=1000)

    def add(tag: str, step: int, value: float) -> None:
        value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        event = event_pb2.Event(
            step=step, wall_time=1.8e9 + step, summary=summary_pb2.Summary(value=[value_pb])
        )
        writer.add_event(event)

    per_epoch = steps // epochs
    for step in range(1, steps + 1):
        lr = 1e-4 * 0.5 * (1 + math.cos(math.pi * step / steps))
        add("loss/current", step, loss_at(step))
        add("loss/average", step, loss_at(step) - 0.01)
        add("lr/unet", step, lr)
        add("lr/textencoder", step, lr / 2)
        if step % per_epoch == 0:
            add("loss/epoch_average", step // per_epoch, loss_at(step) - 0.01)
    writer.close()


def write_log(path: Path, steps: int, epochs: int) -> None:
    per_epoch = steps // epochs
    header = (
        "running training / 学習開始\n"
        f"  num train images * repeats / 学習画像の数×繰り返し回数: {per_epoch}\n"
        "  num reg images / 正則化画像の数: 0\n"
        f"  num batches per epoch / 1epochのバッチ数: {per_epoch}\n"
        f"  num epochs / epoch数: {epochs}\n"
        "  batch size per device / バッチサイズ: 1\n"
        "  gradient accumulation steps / 勾配を合計するステップ数 = 1\n"
        f"  total optimization steps / 学習ステップ数: {steps}\n"
    )
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(header)
        for step in range(1, steps + 1):
            if (step - 1) % per_epoch == 0:
                out.write(f"\nepoch {(step - 1) // per_epoch + 1}/{epochs}\n")
            pct = step * 100 // steps
            loss = f"{loss_at(step) - 0.01:.3g}"
            frame = (
                f"steps: {pct:3d}%|#####     | {step}/{steps} [00:{step % 60:02d}<00:10,  3.76it/s"
            )
            out.write(f"\r{frame}]\r{frame}, avr_loss={loss}]")
        out.write("\nmodel saved.\n")


def build(root: Path, steps: int, epochs: int, prompts: int, size: int) -> Path:
    data = root / "data" / "10_char"
    data.mkdir(parents=True)
    for i in range(20):
        (data / f"img{i}.png").write_bytes(png(64, 64, i))
        (data / f"img{i}.txt").write_text("char, red hair", encoding="utf-8")
    (root / "model").mkdir()
    tokenizer = root / "tok" / "openai_clip-vit-large-patch14"
    tokenizer.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (tokenizer / name).write_text("{}", encoding="utf-8")
    plan_path = root / "plan.toml"
    plan_path.write_text(
        toml.dumps(
            {
                # A local model folder and tokenizer folder: make then needs no network.
                "model": {"base": "model", "tokenizer_cache_dir": "tok"},
                "dataset": {"train_dir": "data", "resolution": 512},
                "network": {"dim": 32, "alpha": 16},
                "training": {"epochs": epochs, "save_every_n_epochs": 1},
                "sampling": {
                    "every_n_epochs": 1,
                    "prompts": [
                        f"char, pose {i} --w {size} --h {size} --d {i}" for i in range(prompts)
                    ],
                },
                "output": {"dir": "out", "name": "benchlora"},
                "launch": {"sd_scripts": "sd-scripts", "python": "/opt/sd/bin/python"},
            }
        ),
        encoding="utf-8",
    )
    run_dir = make_run(check_plan(plan_path)).run_dir
    out = root / "out"
    (out / "sample").mkdir(parents=True)
    for epoch in range(1, epochs + 1):
        for index in range(prompts):
            name = (
                f"benchlora_e{epoch:06d}_{index:02d}_20261127{epoch:02d}{index:02d}00_{index}.png"
            )
            (out / "sample" / name).write_bytes(png(size, size, epoch * 100 + index))
        if epoch < epochs:
            with (out / f"benchlora-{epoch:06d}.safetensors").open("wb") as f:
                f.truncate(37_000_000)  # sparse: the size is what the report shows
    with (out / "benchlora.safetensors").open("wb") as f:
        f.truncate(37_000_000)
    write_events(run_dir / "logs" / "20261127000000" / "network_train", steps, epochs)
    write_log(run_dir / "train.log", steps, epochs)
    finish_summary(
        run_dir,
        load_plan(run_dir / "plan.toml"),
        replay_file(run_dir / "train.log"),
        exit_status=0,
        wall_s=3600.0,
        stop_reason=None,
        escalation=None,
        started_at=None,
        link_final=True,
    )
    return run_dir


def timed(func: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t_build, run_dir = timed(build, Path(tmp), args.steps, args.epochs, args.prompts, args.size)
        sample_dir = Path(tmp) / "out" / "sample"
        images = sorted(sample_dir.glob("*.png"))
        image_bytes = sum(p.stat().st_size for p in images)
        print(
            f"built in {t_build:.1f} s: {len(images)} sample images "
            f"({image_bytes / 2**20:.1f} MiB, {args.size}×{args.size}), {args.steps} steps, "
            f"{args.epochs} epochs"
        )
        times = []
        for _ in range(args.repeat):
            elapsed, path = timed(report.write_report, run_dir)
            times.append(elapsed)
        print(
            f"write_report: median {statistics.median(times):.3f} s "
            f"(runs: {', '.join(f'{t:.3f}' for t in times)}; the first one imports what the "
            "others find loaded); "
            f"report {path.stat().st_size / 2**20:.1f} MiB"
        )
        t_tb, scalars = timed(read_scalars, run_dir / "logs")
        t_log, _ = timed(replay_file, run_dir / "train.log")
        t_gather, data = timed(report.gather, run_dir)
        t_render, text = timed(report.render_report, data)
        t_write, _ = timed((Path(tmp) / "x.html").write_text, text, encoding="utf-8")
        print(
            f"parts: gather {t_gather:.3f} s (TensorBoard {t_tb:.3f} s for "
            f"{sum(len(v) for v in scalars.values())} values, train.log {t_log:.3f} s), "
            f"render {t_render:.3f} s, write {t_write:.3f} s"
        )
        ok = statistics.median(times) <= 2.0
        print("target ≤ 2 s:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
