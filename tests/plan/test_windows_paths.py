r"""Windows paths in a TOML basic string: `"C:\Users\me"` is a TOML escape error, and
`"C:\temp\b"` is a valid string holding a tab and a backspace. Both get the hint: single
quotes or forward slashes; single-quoted paths are kept as written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from helpers import make_images

if TYPE_CHECKING:
    from pathlib import Path

HINT = "single quotes"

PLAN = """\
[model]
base = {base}

[dataset]
train_dir = {train_dir}

[output]
name = "xunxian"
"""


def _plan(
    root: Path,
    *,
    base: str = '"stable-diffusion-v1-5/stable-diffusion-v1-5"',
    train_dir: str = '"data"',
) -> Path:
    make_images(root / "data" / "5_testchar", [(512, 512)] * 4)
    path = root / "plan.toml"
    path.write_text(PLAN.format(base=base, train_dir=train_dir), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("key", "written", "where"),
    [
        ("train_dir", r'"C:\Users\me\data"', "invalid TOML"),  # \U wants 8 hex digits
        ("train_dir", r'"D:\new\data"', "invalid TOML"),  # \d is no escape
        ("train_dir", r'"C:\temp\b"', "dataset.train_dir"),  # valid: a tab and a backspace
        ("base", r'"D:\models\final.safetensors"', "invalid TOML"),
        ("base", r'"D:\temp\file.ckpt"', "model.base"),  # \t and \f
    ],
)
def test_a_windows_path_in_double_quotes_gets_the_hint(
    tmp_path: Path, run_cli: Any, key: str, written: str, where: str
) -> None:
    plan = _plan(tmp_path, **{key: written})
    result = run_cli("check", plan, "--no-hardware")
    assert result.exit_code == 2, result.output
    assert where in result.output
    assert HINT in result.output, result.output
    assert "forward slashes" in result.output
    assert "Traceback" not in result.output


def test_a_windows_path_in_single_quotes_is_kept_as_written(tmp_path: Path, run_cli: Any) -> None:
    plan = _plan(tmp_path, train_dir=r"'C:\Users\me\data'")
    result = run_cli("check", plan, "--no-hardware")
    assert HINT not in result.output
    assert r"C:\Users\me\data" in result.output  # the folder is missing here, named intact


def test_a_double_quoted_windows_path_in_set_gets_the_hint(tmp_path: Path, run_cli: Any) -> None:
    plan = _plan(tmp_path)
    result = run_cli("check", plan, "--no-hardware", "--set", r'dataset.train_dir="D:\data\x"')
    assert result.exit_code == 2, result.output
    assert "--set" in result.output
    assert HINT in result.output


def test_a_quoted_set_value_that_is_no_toml_is_refused_not_kept_with_its_quotes(
    tmp_path: Path, run_cli: Any
) -> None:
    plan = _plan(tmp_path)
    result = run_cli("check", plan, "--no-hardware", "--set", 'output.name="unclosed')
    assert result.exit_code == 2, result.output
    assert "is not a TOML value" in result.output


def test_a_bare_windows_path_in_set_is_text(tmp_path: Path, run_cli: Any) -> None:
    plan = _plan(tmp_path)
    result = run_cli("check", plan, "--no-hardware", "--set", r"dataset.train_dir=D:\data\x")
    assert HINT not in result.output
    assert r"D:\data\x" in result.output
