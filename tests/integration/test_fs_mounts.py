"""Real read-only and full file systems (tmpfs mounts): `check`, `make` and the end of `launch`.

Needs Linux and root (mount); skipped elsewhere with the reason. The same faults injected at
every write are in tests/planning/test_make_faults.py, which runs everywhere.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import base_plan, make_images, write_plan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from click.testing import Result

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parent / "fake_trainer.py"
LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """mount(name, size, read_only) → a fresh tmpfs under tmp_path; unmounted afterwards."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs Linux, root and mount(8) to mount a tmpfs (run the tests as root)")
    mounted: list[Path] = []

    def mount(name: str, size: str = "1m", *, read_only: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        _run("umount", "-l", str(path))


def _remount_read_only(path: Path) -> None:
    done = _run("mount", "-o", "remount,ro", str(path))
    assert done.returncode == 0, done.stderr


def _plan(root: Path, **sections: dict[str, object]) -> Path:
    make_images(root / "data" / "5_testchar", [(512, 512), (512, 768)])
    allow = {"rules": {"allow": ["image-count", "steps-range"]}}
    return write_plan(root, base_plan(**allow, **sections))


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("field", ["output.runs_dir", "output.dir"])
def test_read_only_mount_is_exit_2_in_check_and_make(
    tmp_path: Path, tmpfs: Callable[..., Path], run_cli: Callable[..., Result], field: str
) -> None:
    locked = tmpfs("locked", read_only=True)
    plan = _plan(tmp_path)
    for command in ("check", "make"):
        result = run_cli(command, plan, "--set", f'{field}="{locked / "sub"}"')
        assert result.exit_code == 2, result.output
        assert f"{field}: {locked} is on a read-only file system" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_read_only_hf_home_says_how_to_fix(
    tmp_path: Path,
    tmpfs: Callable[..., Path],
    run_cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
    offline_hub: Path,
) -> None:
    """The fake Hub cache (model and tokenizer) on a read-only HF_HOME: the model is read
    from it, but the tokenizer cache under it cannot be filled."""
    home = tmpfs("hf-home", "64m")
    shutil.copytree(offline_hub, home, dirs_exist_ok=True, symlinks=True)
    _remount_read_only(home)
    monkeypatch.setenv("HF_HOME", str(home))
    plan = _plan(tmp_path)
    for command in ("check", "make"):
        result = run_cli(command, plan)
        assert result.exit_code == 2, result.output
        assert "model.tokenizer_cache_dir" in result.output
        assert "read-only file system" in result.output
        assert "HF_HOME elsewhere" in result.output
    assert not (tmp_path / "runs").exists()
    # the way out the message names works
    result = run_cli("make", plan, "--set", f'model.tokenizer_cache_dir="{tmp_path / "tok"}"')
    assert result.exit_code == 0, result.output


def test_full_disk_during_make_leaves_nothing(
    tmp_path: Path, tmpfs: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    disk = tmpfs("disk", "64k")
    plan = _plan(tmp_path, output={"runs_dir": str(disk / "runs")})
    (disk / "filler").write_bytes(bytes(13 * 4096))  # 3 of its 16 pages stay free
    result = run_cli("make", plan)
    assert result.exit_code == 2, result.output
    assert "the disk is full" in result.output
    assert str(disk / "runs") in result.output
    assert "Traceback" not in result.output
    assert _listing(disk) == ["filler"], "the failed make left files (or runs/) behind"


def test_full_disk_at_the_end_of_a_run_still_shows_the_summary(
    tmp_path: Path, tmpfs: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    """The trainer ends, then the disk is full: exit.json, manifest.json and summary.json
    cannot be written; the run's result is still shown and its exit status kept."""
    disk = tmpfs("disk", "4m")
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("# stand-in; the fake trainer runs instead\n")
    replay = [sys.executable, str(FAKE), "--replay", str(LOGS / "run1_basic.stderr.txt")]
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"{shlex.join(replay)} || exit $?\n"
        f"head -c 100000000 /dev/zero > {shlex.quote(str(disk / 'filler'))} 2>/dev/null\n"
        "exit 0\n"
    )
    wrapper.chmod(0o755)
    plan = _plan(
        tmp_path,
        output={"runs_dir": str(disk / "runs")},
        launch={"sd_scripts": str(sd), "python": str(wrapper)},
    )
    # Its own process, as a user's launch is (the next `summary` must find kohya-plan gone).
    launched = _run(sys.executable, "-m", "kohya_plan", "launch", str(plan), "--plain")
    output = launched.stdout + launched.stderr
    assert "Traceback" not in output
    assert "failed unexpectedly" not in output
    assert "step 16/16" in output
    assert "was not written: the disk is full" in output
    assert "kohya-plan summary" in output
    (run_dir,) = (disk / "runs").iterdir()
    assert not (run_dir / "summary.json").exists()
    assert launched.returncode == 0, output  # the run's own outcome, not the disk's
    assert "Run succeeded" in output

    # Space again: `kohya-plan summary`, a later process as a user's would be, writes what was
    # missing (in this process the launch's own pid is still alive, so it would read "running").
    (disk / "filler").unlink()
    again = _run(sys.executable, "-m", "kohya_plan", "summary", str(run_dir), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 16


def test_summary_of_a_run_on_a_read_only_disk_is_shown_with_a_warning(
    tmp_path: Path, tmpfs: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    disk = tmpfs("disk", "4m")
    plan = _plan(tmp_path, output={"runs_dir": str(disk / "runs")})
    made = json.loads(run_cli("make", plan, "--json").stdout)
    run_dir = Path(made["run_dir"])
    (run_dir / "train.log").write_bytes((LOGS / "run1_basic.stderr.txt").read_bytes())
    _remount_read_only(disk)
    result = run_cli("summary", run_dir)
    assert result.exit_code == 0, result.output
    assert "steps 16/16" in result.output
    assert "summary.json was not written: the file system is read-only" in result.output
