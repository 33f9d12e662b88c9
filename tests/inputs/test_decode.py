"""The deep check on real image files: damaged data found, Pillow's warnings not errors, the
thread pool, the verdict cache (by size and mtime, in the user's cache folder, never in the
data set), and `check --deep` as the user runs it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import base_plan, write_plan
from PIL import Image

from kohya_plan.inputs.decode import decode_problem, deep_check

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result


def _picture(size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 7 % 256, y * 5 % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])]
    )
    return image


def make_files(folder: Path) -> dict[str, bool]:
    """Real files of each kind → whether sd-scripts' load_image fails on it."""
    folder.mkdir(parents=True, exist_ok=True)
    picture = _picture()
    expected: dict[str, bool] = {}
    for fmt in ("png", "jpg", "webp", "bmp"):
        picture.save(folder / f"{fmt}.{fmt}")
        expected[f"{fmt}.{fmt}"] = False
    picture.convert("L").save(folder / "gray.png")  # converted to RGB, as load_image does
    picture.convert("P").save(folder / "palette.png")
    expected |= {"gray.png": False, "palette.png": False}
    for fmt, seed in (("png", 0), ("jpg", 2)):
        data = (folder / f"{fmt}.{fmt}").read_bytes()
        (folder / f"cut-{fmt}.{fmt}").write_bytes(data[: len(data) // 2])
        expected[f"cut-{fmt}.{fmt}"] = True
        middle = len(data) // 2
        for name, garbage, fails in (
            (f"broken-{fmt}.{fmt}", random.Random(seed).randbytes(64), True),
            # JPEG decoders carry on over most damaged data (artifacts, no error): so does
            # sd-scripts, and so the deep check passes it
            (f"garbled-{fmt}.{fmt}", random.Random(0).randbytes(64), fmt == "png"),
        ):
            damaged = bytearray(data)
            damaged[middle : middle + 64] = garbage
            (folder / name).write_bytes(bytes(damaged))
            expected[name] = fails
    (folder / "text.png").write_text("not an image")
    expected["text.png"] = True
    return expected


def test_damaged_files_are_found(tmp_path: Path) -> None:
    expected = make_files(tmp_path)
    for name, fails in expected.items():
        problem = decode_problem(str(tmp_path / name))
        assert (problem is not None) is fails, (name, problem)
    assert decode_problem(str(tmp_path / "cut-png.png")) == "OSError: image file is truncated"
    assert decode_problem(str(tmp_path / "text.png")).startswith("UnidentifiedImageError:")


def test_a_decompression_bomb_warning_is_not_an_error(tmp_path: Path) -> None:
    """9460 x 9460 = 89,491,600 pixels: Pillow warns and sd-scripts trains it."""
    Image.new("1", (9460, 9460)).save(tmp_path / "big.png")
    with pytest.warns(Image.DecompressionBombWarning):
        assert decode_problem(str(tmp_path / "big.png")) is None
    problems, _stats = deep_check([(tmp_path, ["big.png"])], reuse=False, cache=tmp_path / "c")
    assert problems == {tmp_path: ()}  # and no warning escapes the pool


def test_threads_agree_with_one_thread_and_report_progress(tmp_path: Path) -> None:
    expected = make_files(tmp_path / "imgs")
    names = sorted(expected)
    seen: list[tuple[int, int]] = []
    one, _ = deep_check([(tmp_path / "imgs", names)], reuse=False, workers=1, cache=tmp_path / "a")
    many, stats = deep_check(
        [(tmp_path / "imgs", names)],
        reuse=False,
        workers=4,
        cache=tmp_path / "b",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert one == many
    assert {n for n, _ in many[tmp_path / "imgs"]} == {n for n, bad in expected.items() if bad}
    assert stats.images == stats.decoded == len(names)
    assert stats.workers == 4
    assert seen[-1] == (len(names), len(names))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_cache_reuses_verdicts_of_unchanged_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    expected = make_files(folder)
    names = sorted(expected)
    before = sorted(p.name for p in folder.iterdir())
    cache = tmp_path / "cache"
    first, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert stats.decoded == len(names)
    assert stats.cache == str(cache / "decoded")
    again, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert (again, stats.decoded) == (first, 0)
    # a file replaced by a good one of another size: decoded again, its verdict changes
    _picture((50, 50)).save(folder / "cut-png.png")
    changed, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert stats.decoded == 1
    assert "cut-png.png" not in dict(changed[folder])
    # the same size, a new mtime: decoded again
    os.utime(folder / "png.png", ns=(1, 1))
    _, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert stats.decoded == 1
    # check --deep decodes everything, whatever the cache says
    _, stats = deep_check([(folder, names)], reuse=False, cache=cache)
    assert stats.decoded == len(names)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written in the data


def test_verdicts_of_another_pillow_are_not_trusted(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    names = sorted(make_files(folder))
    cache = tmp_path / "cache"
    deep_check([(folder, names)], reuse=True, cache=cache)
    (stored,) = (cache / "decoded").iterdir()
    data = json.loads(stored.read_text())
    data["pillow"] = "1.0"
    data["images"] = {n: [v[0], v[1], None] for n, v in data["images"].items()}  # "all fine"
    stored.write_text(json.dumps(data))
    problems, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert stats.decoded == len(names)
    assert problems[folder]


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}', '{"version": 1, "images": 3}'])
def test_a_damaged_cache_file_is_ignored(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "imgs"
    names = sorted(make_files(folder))
    cache = tmp_path / "cache"
    deep_check([(folder, names)], reuse=True, cache=cache)
    (stored,) = (cache / "decoded").iterdir()
    stored.write_text(content)
    _problems, stats = deep_check([(folder, names)], reuse=True, cache=cache)
    assert stats.decoded == len(names)


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    names = sorted(make_files(folder))
    blocked = tmp_path / "file-in-the-way"
    blocked.write_text("")
    problems, stats = deep_check([(folder, names)], reuse=True, cache=blocked)
    assert stats.cache is None
    assert problems[folder]


def test_check_deep_from_the_command_line(
    tmp_path: Path, run_cli: Callable[..., Result], private_cache: Path
) -> None:
    folder = tmp_path / "data" / "5_testchar"
    expected = make_files(folder)
    for name in expected:
        (folder / Path(name).with_suffix(".txt")).write_text(f"testchar, {Path(name).stem}")
    plan = write_plan(tmp_path, base_plan(rules={"allow": ["image-count", "steps-range"]}))
    shallow = run_cli("check", plan, "--json", "--no-hardware")
    assert "image-corrupt" not in shallow.stdout
    assert json.loads(shallow.stdout)["deep"] is None
    result = run_cli("check", plan, "--deep", "--json", "--no-hardware")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    (corrupt,) = [e for e in doc["errors"] if e["id"] == "image-corrupt"]
    assert "Pillow cannot decode" in corrupt["message"]
    assert "sd-scripts stops with this error when it loads the image" in corrupt["message"]
    assert doc["deep"]["images"] >= 10
    assert doc["deep"]["cache"] == str(private_cache / "decoded")
    text = run_cli("check", plan, "--deep", "--no-hardware").output
    assert "Deep check:" in text
    assert "✗ dataset.train_dir: Pillow cannot decode broken-jpg.jpg" in text
