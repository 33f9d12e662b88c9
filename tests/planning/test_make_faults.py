"""Faults of the file system during `make`: each is exit 2 with the path and the fix, no
traceback, and nothing of the run folder left behind.

The faults are injected where the disk would fail: ``os.write`` raising ENOSPC (or EIO) at
the Nth write, ``os.fsync``/``os.replace`` failing, ``mkdir`` refused. `make` must survive
a fault at every one of its writes. Real read-only and full file systems are in
tests/integration/test_fs_mounts.py.
"""

from __future__ import annotations

import errno
import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from helpers import base_plan, make_images, write_plan

from kohya_plan import rundir

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.testing import Result


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    make_images(tmp_path / "data" / "5_testchar", [(512, 512), (512, 768)])
    return write_plan(tmp_path, base_plan(rules={"allow": ["image-count", "steps-range"]}))


def _leftovers(root: Path) -> list[str]:
    runs = root / "runs"
    return sorted(p.name for p in runs.rglob("*")) if runs.exists() else []


class _FailAt:
    """Count calls of an os function and raise OSError(code) at call number ``at``."""

    def __init__(self, real: Callable[..., Any], at: int, code: int) -> None:
        self.real, self.at, self.code, self.calls, self.fired = real, at, code, 0, False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            self.fired = True
            raise OSError(self.code, os.strerror(self.code))
        return self.real(*args, **kwargs)


def _assert_clean_failure(result: Result, root: Path, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "failed unexpectedly" not in result.output
    for word in words:
        assert word in result.output, result.output
    assert _leftovers(root) == [], "a failed make left files behind"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, ("the disk is full", "df -h")),
        (errno.EIO, ("input/output error",)),
        (errno.EDQUOT, ("quota",)),
    ],
    ids=["ENOSPC", "EIO", "EDQUOT"],
)
def test_a_failed_write_at_every_write_of_make_leaves_nothing(
    plan: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, code: int, words
) -> None:
    real = os.write
    at = 1
    while True:
        fault = _FailAt(real, at, code)
        monkeypatch.setattr(os, "write", fault)
        result = run_cli("make", plan)
        monkeypatch.setattr(os, "write", real)
        if not fault.fired:
            break  # every write of make has had its turn
        _assert_clean_failure(result, plan.parent, str(plan.parent / "runs"), *words)
        assert "nothing was kept" in result.output
        at += 1
    assert result.exit_code == 0, result.output
    # make writes at least its nine files; each had a failing write injected above
    assert at > len(rundir.MADE_BY_MAKE)
    assert len(_leftovers(plan.parent)) == 1 + len(rundir.MADE_BY_MAKE)


@pytest.mark.parametrize("name", ["fsync", "replace", "chmod"])
def test_a_failed_fsync_rename_or_chmod_leaves_nothing(
    plan: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(os, name, _FailAt(getattr(os, name), 1, errno.ENOSPC))
    _assert_clean_failure(run_cli("make", plan), plan.parent, "the disk is full")


def test_runs_folder_that_cannot_be_made_is_exit_2_and_undone(
    plan: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    real_mkdir = Path.mkdir
    deep = plan.parent / "a" / "b" / "runs"

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.parent == deep:  # the run folder itself, after a/ and a/b/ and runs/ were made
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = run_cli("make", plan, "--set", f'output.runs_dir="{deep}"')
    assert result.exit_code == 2, result.output
    assert "permission is denied" in result.output
    assert "output.runs_dir" in result.output
    assert not (plan.parent / "a").exists(), "the folders make created were not removed"


def test_existing_runs_folder_is_kept_when_make_fails(
    plan: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    (plan.parent / "runs" / "older-run").mkdir(parents=True)
    monkeypatch.setattr(os, "write", _FailAt(os.write, 1, errno.ENOSPC))
    assert run_cli("make", plan).exit_code == 2
    assert _leftovers(plan.parent) == ["older-run"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
@pytest.mark.parametrize("field", ["output.runs_dir", "output.dir"])
def test_read_only_folder_is_an_error_in_check_and_make(
    plan: Path, run_cli: Callable[..., Result], field: str
) -> None:
    folder = plan.parent / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        for command in ("check", "make"):
            result = run_cli(command, plan, "--set", f'{field}="{folder / "sub"}"')
            assert result.exit_code == 2, result.output
            assert f"{field}: {folder} is not writable for you" in result.output
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_read_only_hf_home_tokenizer_cache_says_how_to_fix(
    plan: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `make` says when the tokenizer cannot be stored: EROFS as a read-only HF_HOME
    gives it (root ignores permissions, so the refusal is injected at the copy)."""
    import shutil

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(args[1]))

    monkeypatch.setattr(shutil, "copyfile", refuse)
    result = run_cli("make", plan, "--set", f'model.tokenizer_cache_dir="{plan.parent / "tok"}"')
    assert result.exit_code == 2, result.output
    for words in ("read-only", "model.tokenizer_cache_dir", "HF_HOME", str(plan.parent / "tok")):
        assert words in result.output, result.output
    assert _leftovers(plan.parent) == []


def test_name_too_long_for_the_file_system(plan: Path, run_cli: Callable[..., Result]) -> None:
    for length, ok in ((230, True), (231, False)):
        result = run_cli("check", plan, "--json", "--set", f'output.name="{"n" * length}"')
        errors = [e["id"] for e in json.loads(result.stdout)["errors"]]
        assert ("name-too-long" not in errors) is ok, (length, errors)
    result = run_cli("make", plan, "--set", f'output.name="{"n" * 240}"')
    assert result.exit_code == 2
    assert "shorten output.name to at most 230 bytes" in result.output
    assert _leftovers(plan.parent) == []


def test_path_with_a_name_too_long_is_a_plan_error(
    plan: Path, run_cli: Callable[..., Result]
) -> None:
    long = "d" * 300
    for field in ("dataset.train_dir", "output.dir", "model.tokenizer_cache_dir"):
        for command in ("check", "make"):
            result = run_cli(command, plan, "--set", f'{field}="{long}"')
            assert result.exit_code == 2, result.output
            assert f"{field}: " in result.output
            assert "300 bytes" in result.output or "too long" in result.output
            assert "Traceback" not in result.output
    assert _leftovers(plan.parent) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output.name", "a\\u0000b"),
        ("output.name", "line\\nbreak"),
        ("output.name", "esc\\u001b[31m"),
        ("dataset.train_dir", "da\\u0000ta"),
        ("dataset.train_dir", "da\\rta"),
        ("output.dir", "o\\u0085ut"),
        ("model.base", "mo\\u0000del"),
        ("launch.python", "py\\tthon"),
    ],
)
def test_nul_and_control_characters_in_plan_values(
    plan: Path, run_cli: Callable[..., Result], field: str, value: str
) -> None:
    result = run_cli("make", plan, "--set", f'{field}="{value}"')
    assert result.exit_code == 2, result.output
    assert f"{field}: contains" in result.output
    assert "Traceback" not in result.output
    assert _leftovers(plan.parent) == []


def test_a_run_folder_name_too_long_is_a_clear_error(tmp_path: Path) -> None:
    """What `make` says if the file system refuses the run folder's name (check usually says
    it first: name-too-long)."""
    with pytest.raises(rundir.RunDirError) as caught, rundir.creating(tmp_path / "runs", "n" * 250):
        pass
    text = str(caught.value)
    assert "its name would be too long for the file system" in text
    assert "shorten output.name (250 bytes" in text
    assert not (tmp_path / "runs").exists()
