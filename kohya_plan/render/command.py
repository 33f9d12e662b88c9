"""The exact launch command: a `list[str]` until the edge; quoting is only for display."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kohya_plan.plan import Plan
    from kohya_plan.rundir import RunDir


@dataclass(frozen=True, slots=True)
class Launch:
    """What `launch` runs: argv, its working folder, and environment additions."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)


def accelerate_prefix(python: str | None) -> list[str]:
    """`python -m accelerate.commands.launch` for a chosen interpreter, else `accelerate launch`."""
    if python is None:
        return ["accelerate", "launch"]
    return [python, "-m", "accelerate.commands.launch"]


def launcher_flags(plan: Plan) -> list[str]:
    """accelerate's own flags; explicit so no stray accelerate config changes the run."""
    la = plan.launch
    flags = [
        "--num_processes",
        str(la.num_processes),
        "--num_machines",
        str(la.num_machines),
        "--mixed_precision",
        plan.training.mixed_precision,
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        str(la.num_cpu_threads_per_process),
    ]
    if la.num_processes > 1:
        flags.append("--multi_gpu")
    if la.gpu_ids is not None:
        flags += ["--gpu_ids", la.gpu_ids]
    if la.main_process_port is not None:
        flags += ["--main_process_port", str(la.main_process_port)]
    return flags


def build_launch(plan: Plan, *, python: str | None, sd_scripts: Path, files: RunDir) -> Launch:
    """The command `make` prints and `launch` runs."""
    argv = [
        *accelerate_prefix(python),
        *launcher_flags(plan),
        str(sd_scripts / plan.script_name),
        "--config_file",
        str(files.config_toml),
        "--dataset_config",
        str(files.dataset_toml),
    ]
    # sd-scripts imports `networks.lora` by module name: run from its folder.
    return Launch(argv=argv, cwd=sd_scripts)


def posix_display(argv: Sequence[str]) -> str:
    """The argv as one POSIX shell line."""
    return shlex.join(argv)


def powershell_quote(arg: str) -> str:
    """A PowerShell single-quoted literal (no expansion; a quote is written twice)."""
    return "'" + arg.replace("'", "''") + "'"


def powershell_display(argv: Sequence[str]) -> str:
    """The argv as one PowerShell line: `& 'exe' 'arg' ...`."""
    return "& " + " ".join(powershell_quote(a) for a in argv)


def command_sh(launch: Launch) -> str:
    """A runnable bash script for the run."""
    return (
        "#!/usr/bin/env bash\n"
        "# Made by kohya-plan: runs this run's training exactly as `kohya-plan launch` would.\n"
        "set -euo pipefail\n"
        f"cd {shlex.quote(str(launch.cwd))}\n"
        f"exec {posix_display(launch.argv)}\n"
    )


def command_ps1(launch: Launch) -> str:
    """A runnable PowerShell script for the run."""
    return (
        "# Made by kohya-plan: runs this run's training exactly as `kohya-plan launch` would.\n"
        "$ErrorActionPreference = 'Stop'\n"
        f"Set-Location -LiteralPath {powershell_quote(str(launch.cwd))}\n"
        f"{powershell_display(launch.argv)}\n"
        "exit $LASTEXITCODE\n"
    )
