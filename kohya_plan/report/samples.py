"""The sample images sd-scripts wrote during a run, placed in the report's epoch × prompt grid.

sd-scripts names them ``<name>_e000001_00_<YYYYmmddHHMMSS>[_<seed>].png`` for epoch samples and
``<name>_000100_00_…`` for step samples; the prompt index is the line of prompts.txt.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Sample images are embedded up to this many bytes in all; above it they are linked beside the
# report instead (the page would get too heavy for a browser to open quickly).
EMBED_LIMIT = 256 * 2**20

_SAMPLE_REST = re.compile(
    r"(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<index>\d{2,})_(?P<stamp>\d{14})"
    r"(?:_(?P<seed>\d+))?\.png"
)


@dataclass(frozen=True, slots=True)
class SampleImage:
    """One sample image: where in the grid it goes, and its bytes (or a link beside the page)."""

    name: str
    prompt_index: int
    epoch: int | None  # epoch-end samples (0 = before training)
    step: int | None  # step samples
    stamp: str  # YYYYmmddHHMMSS from the file name
    seed: int | None
    data: bytes | None = None
    href: str | None = None
    width: int | None = None
    height: int | None = None


def read_prompts(text: str) -> tuple[str, ...]:
    """The sample prompts as sd-scripts numbers them (blank and '#' lines skipped)."""
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _png_size(data: bytes) -> tuple[int | None, int | None]:
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None, None


def parse_sample_name(name: str, output_name: str) -> SampleImage | None:
    """`<name>_e000001_00_<YYYYmmddHHMMSS>[_<seed>].png` (or a step number instead of e…)."""
    prefix = f"{output_name}_" if output_name else ""
    if not name.startswith(prefix):
        return None
    match = _SAMPLE_REST.fullmatch(name[len(prefix) :])
    if match is None:
        return None
    epoch, step, seed = match.group("epoch"), match.group("step"), match.group("seed")
    return SampleImage(
        name=name,
        prompt_index=int(match.group("index")),
        epoch=int(epoch) if epoch is not None else None,
        step=int(step) if step is not None else None,
        stamp=match.group("stamp"),
        seed=int(seed) if seed is not None else None,
    )


def _href(target: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(target, base)
    except ValueError:  # another drive (Windows)
        return target.absolute().as_uri()
    return quote(Path(rel).as_posix())


def find_samples(
    sample_dir: Path,
    output_name: str,
    since: float | None,
    report_dir: Path,
    embed_limit: int = EMBED_LIMIT,
) -> tuple[list[SampleImage], str | None]:
    """The run's sample images (newest per grid cell), embedded or linked; and a note."""
    if not sample_dir.is_dir():
        return [], None
    found: dict[tuple[int, int | None, int | None], tuple[SampleImage, Path, int]] = {}
    older = 0
    for path in sample_dir.iterdir():
        item = parse_sample_name(path.name, output_name)
        if item is None:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if since is not None and stat.st_mtime < since - 1:
            older += 1
            continue
        key = (item.prompt_index, item.epoch, item.step)
        if key in found:
            older += 1
            if found[key][0].stamp >= item.stamp:
                continue
        found[key] = (item, path, stat.st_size)
    total = sum(size for _, _, size in found.values())
    embed = total <= embed_limit
    samples = []
    for item, path, _ in found.values():
        if embed:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            width, height = _png_size(data)
            samples.append(_with(item, data=data, width=width, height=height))
        else:
            width = height = None
            with contextlib.suppress(OSError), path.open("rb") as handle:
                width, height = _png_size(handle.read(24))
            samples.append(_with(item, href=_href(path, report_dir), width=width, height=height))
    notes = []
    if older:
        notes.append(
            f"{older} older sample image(s) in {sample_dir} (from earlier runs into the same "
            "folder, or replaced) are not shown"
        )
    if not embed:
        notes.append(
            f"the images ({total / 2**20:.0f} MiB) are linked, not embedded: keep the report "
            "beside the output folder to see them"
        )
    return samples, "; ".join(notes) or None


def _with(item: SampleImage, **changes: Any) -> SampleImage:
    values = {name: getattr(item, name) for name in SampleImage.__slots__}
    values.update(changes)
    return SampleImage(**values)
