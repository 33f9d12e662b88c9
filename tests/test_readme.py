"""The README works as written, for a newcomer who copies its commands.

Every `kohya-plan …` line in a README code block either runs here, offline, on a copy of the
shipped example (and exits as the README says), or is listed below with why it cannot (it
installs, trains, or names the reader's own file). The output the README shows for `check` is
what `check` prints; its run-folder table names every file a run folder holds
(kohya_plan.rundir); every option of its command table exists in that command's --help; and
the environment variables the test suite tells people to set are ones kohya-plan reads.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from typing import TYPE_CHECKING, Any

import pytest
import sdlab
from helpers import REPO

from kohya_plan import rundir

if TYPE_CHECKING:
    from pathlib import Path

README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLE = REPO / "examples" / "tutorial"

# Commands that run here, in README order, with the exit status the README promises.
RUNS: dict[str, int] = {
    "kohya-plan init my-lora": 0,
    "kohya-plan check my-lora/plan.toml": 0,  # after the images are in (the README's comment)
    "kohya-plan check examples/tutorial/plan.toml": 0,  # "✓ plan is ready"
    "kohya-plan make examples/tutorial/plan.toml --dry-run": 0,
    "kohya-plan make examples/tutorial/plan.toml": 0,
    "kohya-plan check examples/tutorial/plan.toml --set network.dim=32 --set network.alpha=16 "
    "--set training.epochs=8": 0,
    "kohya-plan init my-sdxl --template sdxl-character": 0,
    "kohya-plan check my-sdxl/plan.toml": 0,  # images in, as for my-lora
    "kohya-plan make my-sdxl/plan.toml --dry-run": 0,
    "kohya-plan init my-flux --template flux-character": 0,
    "kohya-plan check my-flux/plan.toml --vram 12": 0,  # advice for a 12 GB card, no error
}
# Commands that cannot run in a unit test, and why.
CANNOT: dict[str, str] = {
    "kohya-plan setup": "installs sd-scripts and torch (~6 GB; tests/setup covers it)",
    "kohya-plan doctor": "probes the trainer's Python in a process (tests/setup covers it)",
    "kohya-plan selftest": "trains on a real sd-scripts (tests/setup, e2e)",
    "kohya-plan doctor my-lora/plan.toml": "probes the trainer's Python in a process",
    "kohya-plan launch my-lora/plan.toml": "trains (tests/integration and e2e launch)",
    "kohya-plan import my_lora.json -o plan.toml": "the reader's own kohya_ss config",
    "kohya-plan launch my-flux/plan.toml": "fetches FLUX.1 from the Hub and trains",
    # 'More GPUs, more machines, a cluster': the reader's own multi-GPU plan and cluster
    "kohya-plan check plan.toml": "the reader's own multi-GPU plan (tests/checks/test_launch_*)",
    "kohya-plan launch plan.toml": "trains on several GPUs (tests/labs/test_scale_launch.py)",
    "kohya-plan submit plan.toml": "needs a SLURM cluster (tests/labs/test_slurm_commands.py)",
    "kohya-plan status runs/xunxian-20261201-120000": "a submitted job (the SLURM lab tests)",
    "kohya-plan summary runs/xunxian-20261201-120000": "a submitted job (the SLURM lab tests)",
    "kohya-plan stop runs/xunxian-20261201-120000": "a submitted job (the SLURM lab tests)",
    "kohya-plan sweep plan.toml --grid optimizer.unet_lr=1e-4,5e-5 --grid network.dim=16,32": (
        "trains four runs (tests/workflows/test_sweep.py, fake trainer)"
    ),
    "kohya-plan sweep runs/xunxian-sweep-20261201-120000": "a sweep the reader stopped",
    "kohya-plan sweep plan.toml --slurm --max-parallel 2": "needs a SLURM cluster (the lab tests)",
    "kohya-plan compare runs/xunxian-sweep-20261201-120000": (
        "a finished sweep (tests/workflows/test_compare.py)"
    ),
}


def readme_commands() -> list[str]:
    """The `kohya-plan …` lines of the README's code blocks, comments dropped."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("kohya-plan "):
                found.append(re.sub(r"\s+#.*$", "", line).strip())
    return found


def test_every_readme_command_is_run_here_or_says_why_not() -> None:
    commands = readme_commands()
    assert commands, "the README has no commands?"
    unknown = [c for c in commands if c not in RUNS and c not in CANNOT]
    assert unknown == [], "add these README commands to RUNS (or CANNOT, with why)"
    assert sorted(set(RUNS) | set(CANNOT)) == sorted(set(commands)), "stale entries"


@pytest.fixture
def newcomer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder holding the shipped example, as in a clone of the repository."""
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "tutorial", ignore=_no_runs)
    monkeypatch.chdir(tmp_path)
    # a plan found no sd-scripts: that is advice, and this is not where it is tested
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    monkeypatch.delenv("KOHYA_SD_PYTHON", raising=False)
    return tmp_path


def _no_runs(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("runs", "output")]


def test_the_readme_commands_work_as_written(newcomer: Path, run_cli: Any) -> None:
    for command in [c for c in readme_commands() if c in RUNS]:
        words = shlex.split(command)
        if words[1] == "check" and words[2].startswith("my-"):
            # "images + .txt captions into my-lora/datasets/xunxian/5_xunxian/" (each template)
            images = newcomer / words[2].split("/")[0] / "datasets" / "xunxian" / "5_xunxian"
            if not images.exists():
                shutil.copytree(EXAMPLE / "datasets" / "xunxian" / "5_xunxian", images)
        args = shlex.split(command)[1:]
        if args[0] == "check":
            args.append("--no-hardware")  # the README's output is this machine-independent part
        result = run_cli(*args)
        assert result.exit_code == RUNS[command], f"{command}\n{result.output}"
        assert "Traceback" not in result.output
        assert "failed unexpectedly" not in result.output
    assert len(list((newcomer / "examples" / "tutorial" / "runs").iterdir())) == 1


def test_check_prints_what_the_readme_shows(newcomer: Path, run_cli: Any) -> None:
    start = README.index("`check` prints, for the example:")
    shown = re.search(r"```\n(.*?)```", README[start:], flags=re.DOTALL)
    assert shown is not None
    result = run_cli("check", "examples/tutorial/plan.toml", "--no-hardware")
    printed = [" ".join(line.split()) for line in result.output.splitlines()]
    for line in shown.group(1).splitlines():
        assert " ".join(line.split()) in printed, line


def test_make_json_without_dry_run_prints_the_run_folder(newcomer: Path, run_cli: Any) -> None:
    """`make --json` (the help says so) prints the new run folder, its argv and files."""
    result = run_cli("make", "examples/tutorial/plan.toml", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["run_dir"].startswith(str(newcomer / "examples" / "tutorial" / "runs"))
    assert set(document) >= {"run_dir", "argv", "files"}


def test_the_run_folder_table_names_every_file() -> None:
    names = [getattr(rundir, n) for n in rundir.__all__ if n.isupper()]
    start = README.index("### The run folder")
    table = README[start : README.index("###", start + 4)]
    missing = [n for n in names if f"`{n}`" not in table and f"`{n}/`" not in table]
    assert missing == [], f"the README's run-folder table lacks {missing}"
    row = next(line for line in README.splitlines() if line.startswith("| `kohya-plan make PLAN"))
    always = row.split("` | ", 1)[1].split("; with `--slurm`")[0]  # job.sbatch: only then
    made = re.findall(r"`([\w.-]+\.[a-z0-9]+)`", always)
    assert made == list(rundir.MADE_BY_MAKE), "the make row lists what make writes, in order"


def _command_rows() -> list[tuple[str, list[str]]]:
    rows = []
    for line in README.splitlines():
        match = re.match(r"\| `kohya-plan ([\w-]+)([^`]*)`", line)
        if match:
            rows.append((match.group(1), re.findall(r"--[\w-]+", match.group(2))))
    return rows


@pytest.mark.parametrize(("command", "options"), _command_rows(), ids=lambda v: str(v))
def test_the_command_table_agrees_with_the_help(
    run_cli: Any, command: str, options: list[str]
) -> None:
    shown = run_cli(command, "--help")
    assert shown.exit_code == 0
    for option in options:
        assert option in shown.output, f"README: kohya-plan {command} {option}; --help lacks it"


# Variables of the test suite itself (opt-ins and caches), documented where they are used.
TEST_SWITCHES = {
    "KOHYA_PLAN_INSTALL_TEST",
    "KOHYA_PLAN_SD_SOURCE",
    "KOHYA_PLAN_TEST_CACHE",
    "KOHYA_PLAN_KEEP_SLURM_LAB",
}


def test_skip_reasons_name_variables_kohya_plan_reads() -> None:
    """What a skipped test tells people to set must be what kohya-plan itself reads."""
    program = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [*(REPO / "kohya_plan").rglob("*.py"), *(REPO / "scripts").iterdir()]
        if p.is_file()
    )
    hints = " ".join([sdlab.SETUP_HINT, sdlab.SUBMODULE_HINT, README])
    named = set(re.findall(r"\bKOHYA_[A-Z_]+\b", hints)) - TEST_SWITCHES
    not_read = sorted(n for n in named if n not in program)
    assert not_read == [], f"named in skip reasons or the README, read by no program: {not_read}"
    assert "KOHYA_PLAN_SD_PYTHON" not in sdlab.SETUP_HINT  # a test-only name
