"""`kohya-plan setup` for real, offline: a bare git mirror of a fake sd-scripts, a folder of
hand-made wheels, pip with --no-index. Each test makes a real venv (a few seconds each)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from setup_fakes import FAKE_WHEELS, Mirror, make_mirror, make_wheel, make_wheels

from kohya_plan.inputs.installation import RECORD_NAME, managed_installation, read_record
from kohya_plan.setup.install import MARKER, SetupError, SetupOptions, setup

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git (apt-get install git)"),
]

NO_GPU = (0, None)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Mirror, Path]:
    root = tmp_path_factory.mktemp("sources")
    return make_mirror(root), make_wheels(root / "wheels")


def _options(home: Path, sources: tuple[Mirror, Path], **more: object) -> SetupOptions:
    mirror, wheels = sources
    fields: dict[str, object] = {
        "home": home,
        "source": str(mirror.path),
        "commit": mirror.commit,
        "find_links": (str(wheels),),
        "no_index": True,
        **more,
    }
    return SetupOptions(**fields)  # type: ignore[arg-type]


def _statuses(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {s.name: s.status for s in report.steps}


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", *args], check=True, capture_output=True)


def test_fresh_install_then_a_second_run_only_checks(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    home = tmp_path / "home"
    options = _options(home, sources)
    check = setup(options, check_only=True, machine=NO_GPU)
    assert set(_statuses(check).values()) == {"needed"}
    assert not home.exists(), "--check must change nothing"

    first = setup(options, machine=NO_GPU)
    assert first.complete
    assert set(_statuses(first).values()) <= {"done", "ok"}
    assert _statuses(first)["torch"] == "done"
    found = managed_installation(home)
    assert found is not None
    assert found.sd_scripts == home / "sd-scripts"
    assert found.commit == sources[0].commit
    head = subprocess.run(
        ["git", "-C", str(found.sd_scripts), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert head == sources[0].commit
    out = subprocess.run(
        [str(found.python), "-c", "import torch, accelerate, library; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == FAKE_WHEELS["torch"]

    started = time.monotonic()
    second = setup(options, machine=NO_GPU)
    assert set(_statuses(second).values()) == {"ok"}
    assert time.monotonic() - started < 30
    assert setup(options, check_only=True, machine=NO_GPU).complete


def test_rerun_repairs_a_removed_package_and_a_moved_checkout(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    home = tmp_path / "home"
    options = _options(home, sources)
    setup(options, machine=NO_GPU)
    python = home / "venv" / "bin" / "python"
    _pip(python, "uninstall", "-y", "accelerate")
    subprocess.run(
        ["git", "-C", str(home / "sd-scripts"), "checkout", "-q", "--detach", sources[0].other],
        check=True,
    )
    check = setup(options, check_only=True, machine=NO_GPU)
    why = {s.name: s.detail for s in check.steps if s.status == "needed"}
    assert "accelerate missing" in why["requirements"]
    assert f"at {sources[0].other[:10]}" in why["checkout"]
    assert managed_installation(home) is not None, "--check leaves the record alone"

    class Interrupt:  # Ctrl-C while the first repair runs
        def step(self, index: int, total: int, title: str) -> None:
            pass

        def line(self, text: str) -> None:
            raise KeyboardInterrupt

        def done(self, outcome: object) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        setup(options, Interrupt(), machine=NO_GPU)
    assert managed_installation(home) is None, "a half-repaired installation is not trusted"

    repaired = setup(options, machine=NO_GPU)
    assert repaired.complete
    assert _statuses(repaired)["requirements"] == "done"
    assert _statuses(repaired)["checkout"] == "done"
    assert _statuses(repaired)["torch"] == "ok"


def test_a_wrong_torch_is_replaced(tmp_path: Path, sources: tuple[Mirror, Path]) -> None:
    home = tmp_path / "home"
    options = _options(home, sources)
    setup(options, machine=NO_GPU)
    make_wheel(sources[1], "torch", "2.9.1")
    _pip(
        home / "venv" / "bin" / "python",
        "install",
        "--no-index",
        "-f",
        str(sources[1]),
        "torch==2.9.1",
    )
    check = setup(options, check_only=True, machine=NO_GPU)
    assert {s.name: s.detail for s in check.steps}["torch"] == "torch 2.9.1 (wants 2.14.1)"
    assert setup(options, machine=NO_GPU).complete


def test_leftovers_of_an_interrupted_run_are_removed(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    home = tmp_path / "home"
    partial = home / "sd-scripts.partial"
    partial.mkdir(parents=True)
    (partial / "half-cloned").write_text("x")
    venv = home / "venv"
    venv.mkdir()
    # the record is written before the venv is made: with no venv stamp, it is half made
    (venv / RECORD_NAME).write_text(json.dumps({"made_by": "kohya-plan setup", "steps": {}}))
    (venv / "junk").write_text("x")
    report = setup(_options(home, sources), machine=NO_GPU)
    assert report.complete
    assert not partial.exists()
    assert not (venv / "junk").exists()
    assert (home / "sd-scripts" / ".git" / MARKER).is_file()


def test_folders_kohya_plan_did_not_make_are_left_alone(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    home = tmp_path / "home"
    foreign = home / "sd-scripts"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(SetupError, match="kohya-plan did not make; it is left alone"):
        setup(_options(home, sources), machine=NO_GPU)
    assert (foreign / "mine.txt").read_text() == "keep me"

    other = tmp_path / "other"
    (other / "venv").mkdir(parents=True)
    (other / "venv" / "data.txt").write_text("keep me too")
    with pytest.raises(SetupError, match="not a virtual environment"):
        setup(_options(other, sources), machine=NO_GPU)
    assert (other / "venv" / "data.txt").read_text() == "keep me too"


def test_an_existing_venv_and_checkout_are_used_as_they_are(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    """The developer layout (scripts/setup-sd-scripts): vendor/sd-scripts and .venv-sd."""
    checkout = tmp_path / "vendor" / "sd-scripts"
    subprocess.run(["git", "clone", "-q", str(sources[0].path), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", sources[0].commit], check=True)
    venv = tmp_path / ".venv-sd"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    options = _options(tmp_path / "home", sources, sd_scripts=checkout, venv=venv)
    report = setup(options, machine=NO_GPU)
    assert report.complete
    assert _statuses(report)["checkout"] == "ok"
    assert "using the existing one" in {s.name: s.detail for s in report.steps}["venv"]
    assert not (tmp_path / "home").exists(), "nothing is written outside the chosen folders"
    record = read_record(venv / RECORD_NAME)
    assert record is not None
    assert record["complete"] is True
    assert record["sd_scripts"] == str(checkout)


def test_a_commit_the_mirror_lacks_names_the_fix(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    options = _options(tmp_path / "home", sources, commit="0" * 40)
    with pytest.raises(SetupError, match=r"is not in .*update that mirror"):
        setup(options, machine=NO_GPU)
    assert not (tmp_path / "home" / "sd-scripts").exists()


def test_killed_mid_step_then_a_rerun_finishes(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    """kill -9 of the whole process group while pip builds sd-scripts; the rerun repairs."""
    mirror, wheels = sources
    home = tmp_path / "home"
    marker = tmp_path / "building"
    argv = [
        sys.executable,
        "-m",
        "kohya_plan",
        "setup",
        "--dir",
        str(home),
        "--from",
        str(mirror.path),
        "--commit",
        mirror.commit,
        "--no-index",
        "--find-links",
        str(wheels),
        "--plain",
    ]
    env = {**os.environ, "FAKE_SD_SLOW_BUILD": str(marker)}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the slow build never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert managed_installation(home) is None, "a killed setup must not look complete"
    record = read_record(home / "venv" / RECORD_NAME)
    assert record is not None
    assert "sd-scripts" not in record["steps"]
    assert {"venv", "torch", "requirements"} <= set(record["steps"])

    again = subprocess.run(
        [a for a in argv if a != "--plain"] + ["--plain"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "sd-scripts (library) not installed" in again.stdout
    assert managed_installation(home) is not None


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH (pipx install uv)")
def test_uv_makes_the_same_installation(tmp_path: Path, sources: tuple[Mirror, Path]) -> None:
    home = tmp_path / "home"
    options = _options(home, sources, installer="uv")
    report = setup(options, machine=NO_GPU)
    assert report.complete
    assert report.installer == "uv"
    record = read_record(home / "venv" / RECORD_NAME)
    assert record is not None
    assert set(record["steps"]) == {"venv", "torch", "requirements", "sd-scripts"}
    assert set(_statuses(setup(options, machine=NO_GPU)).values()) == {"ok"}


def test_local_edits_in_the_checkout_are_never_overwritten(
    tmp_path: Path, sources: tuple[Mirror, Path]
) -> None:
    home = tmp_path / "home"
    options = _options(home, sources)
    setup(options, machine=NO_GPU)
    checkout = home / "sd-scripts"
    subprocess.run(
        ["git", "-C", str(checkout), "checkout", "-q", "--detach", sources[0].other], check=True
    )
    (checkout / "train_network.py").write_text("print('my own edit')\n")
    with pytest.raises(
        SetupError, match=r"local changes in .* block the checkout.*git -C .* stash"
    ):
        setup(options, machine=NO_GPU)
    assert (checkout / "train_network.py").read_text() == "print('my own edit')\n"
