"""Hostile folder names: whatever a folder is called, `make` exits 0 or 2 (never a traceback,
nothing written on 2), and every file it renders reads back, with both sd-scripts' reader
(toml 0.10.2) and tomllib (kohya_plan.loading), to exactly the paths on disk.

The names land in TOML strings (image_dir, class_tokens, output_dir, …) and, through the plan
file's path, in the comment that opens every file, where a line break would end the comment
and let the rest of the name be read as TOML.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import toml
from click.testing import CliRunner
from helpers import base_plan, make_images, write_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kohya_plan import rundir
from kohya_plan.cli import cli
from kohya_plan.loading import loads_toml
from kohya_plan.render.dataset_toml import header_lines
from kohya_plan.render.toml_text import comment_text

if TYPE_CHECKING:
    from click.testing import Result

HOSTILE = [
    "new\nline",
    "carriage\rreturn",
    "crlf\r\nx",
    "esc\x1b[31mred",
    "bell\x07",
    "del\x7f",
    "c1\x85next",
    "sep\u2028line",
    'double " quote',
    "single ' quote",
    "back\\slash\\",
    "中文 データ 한국어",
    "# not a comment",
    "[table]",
    "key = 1",
    'x"\nmax_train_steps = 1\n#',
    "tab\there",
    " leading and trailing ",
    "🎨 emoji",
    "$HOME `cmd` $(x) ;&|",
]

_NAME = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=24,
).filter(lambda s: s not in (".", "..") and len(os.fsencode(s)) <= 200)


def _make(root: Path, plan_folder: str, data_folder: str) -> tuple[Result, Path, Path]:
    project = root / plan_folder
    images = project / "data" / f"5_{data_folder}"
    make_images(images, [(512, 512), (512, 768)])
    plan = write_plan(project, base_plan(rules={"allow": ["image-count", "steps-range"]}))
    result = CliRunner().invoke(cli, ["make", str(plan), "--json"], catch_exceptions=False)
    return result, project, images


def _assert_reads_back(result: Result, project: Path, images: Path, data_folder: str) -> None:
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    assert run.parent == project / "runs"
    for name in (rundir.DATASET, rundir.CONFIG, rundir.PLAN, rundir.PLAN_SOURCE):
        text = (run / name).read_text(encoding="utf-8")
        ours, theirs = loads_toml(text), toml.loads(text)
        assert ours == theirs, name
    dataset = toml.loads((run / rundir.DATASET).read_text(encoding="utf-8"))
    (subset,) = dataset["datasets"][0]["subsets"]
    assert subset["image_dir"] == str(images)
    assert subset["class_tokens"] == data_folder
    sections = toml.loads((run / rundir.CONFIG).read_text(encoding="utf-8"))
    config = {k: v for table in sections.values() for k, v in table.items()}  # as sd-scripts
    assert config["output_dir"] == str(project / "out")
    assert config["logging_dir"] == str(run / rundir.LOGS)
    assert "max_train_steps" not in config  # nothing of a name was read as a key
    prompts = (run / rundir.PROMPTS).read_text(encoding="utf-8")
    # sd-scripts skips lines starting with "#"; a name must not start a prompt line
    for line in prompts.splitlines():
        assert not line.strip() or line.startswith("#") or data_folder not in line


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_folder_names_read_back(tmp_path: Path, name: str) -> None:
    result, project, images = _make(tmp_path, name, name)
    _assert_reads_back(result, project, images, name)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan_folder=_NAME, data_folder=_NAME)
def test_any_folder_names_give_0_or_2_and_files_that_read_back(
    plan_folder: str, data_folder: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            result, project, images = _make(root, plan_folder, data_folder)
        except OSError as exc:  # the test's own files: a name this file system refuses
            pytest.skip(f"the file system refuses {plan_folder!r}/{data_folder!r}: {exc}")
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert not (project / "runs").exists(), "a refused make wrote files"
            return
        _assert_reads_back(result, project, images, data_folder)


@pytest.mark.parametrize("name", HOSTILE)
def test_header_comment_lines_are_comments_to_both_readers(name: str) -> None:
    text = "\n".join(header_lines(f"made from {comment_text(name)}\nsecond line")) + "x = 1\n"
    assert toml.loads(text) == loads_toml(text) == {"x": 1}


def _bytes_name_allowed(root: Path) -> bool:
    try:
        (root / os.fsdecode(b"probe\xff")).mkdir()
    except OSError:
        return False  # macOS, Windows: names must be Unicode there
    return True


@pytest.mark.parametrize("where", ["data_folder", "plan_folder"])
def test_a_folder_name_that_is_not_utf8_is_exit_2(tmp_path: Path, where: str) -> None:
    if not _bytes_name_allowed(tmp_path):
        pytest.skip("this file system only takes Unicode names")
    odd = os.fsdecode(b"latin1 caf\xe9")
    names = {"plan_folder": "plan", "data_folder": "x", where: odd}
    result, project, _images = _make(tmp_path, names["plan_folder"], names["data_folder"])
    assert result.exit_code == 2, result.output
    assert "caf\\xe9 has a name that is not valid UTF-8" in result.output
    assert "Traceback" not in result.output
    assert not (project / "runs").exists()


def test_an_image_name_that_is_not_utf8_is_fine(tmp_path: Path) -> None:
    """sd-scripts globs and opens such images itself: only folder names go into TOML."""
    if not _bytes_name_allowed(tmp_path):
        pytest.skip("this file system only takes Unicode names")
    project = tmp_path / "plan"
    images = project / "data" / "5_x"
    make_images(images, [(512, 512)], stem=os.fsdecode(b"caf\xe9"))
    result, _project, images = _make(tmp_path, "plan", "x")
    _assert_reads_back(result, project, images, "x")
