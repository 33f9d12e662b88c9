"""The exact launch command: a `list[str]` until the edge; quoting is only for display."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kohya_plan.plan.launch import env_ref

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from kohya_plan.plan import Plan
    from kohya_plan.rundir import RunDir


@dataclass(frozen=True, slots=True)
class Launch:
    """What `launch` runs: argv, its working folder, and environment additions.

    ``argv`` is ``prefix + flags + script_args``: the accelerate launcher, its own flags, then
    the training script and its arguments (the SLURM job script takes them apart).
    """

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def script_args(self) -> list[str]:
        """The training script and its arguments (what follows the launcher's flags)."""
        return self.argv[len(self.prefix) + len(self.flags) :]


def accelerate_prefix(python: str | None) -> list[str]:
    """`python -m accelerate.commands.launch` for a chosen interpreter, else `accelerate launch`."""
    if python is None:
        return ["accelerate", "launch"]
    return [python, "-m", "accelerate.commands.launch"]


DEFAULT_MAIN_PROCESS_PORT = 29500
"""accelerate's (and torchrun's) port on machine 0 when none is given."""


def launcher_flags(plan: Plan, *, config_file: Path | None = None) -> list[str]:
    """accelerate's own flags, every one that matters given explicitly.

    With ``config_file`` (the run folder's own accelerate config, see `accelerate_config`),
    accelerate never reads a default config file (``~/.cache/huggingface/accelerate``): one left
    there by ``accelerate config`` would otherwise still switch a one-process run to DeepSpeed
    or FSDP and fill in any flag that is not given.
    """
    la = plan.launch
    processes, machines = la.num_processes, la.num_machines
    flags = ["--config_file", str(config_file)] if config_file is not None else []
    flags += [
        "--num_processes",
        str(processes),
        "--num_machines",
        str(machines),
    ]
    if processes > 1:
        flags.append("--multi_gpu")
    flags += [
        "--gpu_ids",
        la.gpu_ids or "all",
        "--mixed_precision",
        plan.training.mixed_precision,
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        str(la.num_cpu_threads_per_process),
    ]
    if machines > 1:
        flags += [
            "--machine_rank",
            str(la.machine_rank),
            "--main_process_ip",
            str(la.main_process_ip),
        ]
    if processes > 1 or la.main_process_port is not None:
        flags += ["--main_process_port", str(la.main_process_port or DEFAULT_MAIN_PROCESS_PORT)]
    if machines > 1:
        # a machine that never comes makes the others fail after rdzv_timeout, not wait 600 s
        flags += ["--rdzv_backend", la.rdzv_backend, "--rdzv_conf", f"timeout={la.rdzv_timeout}"]
        if la.same_network:
            flags.append("--same_network")
    return flags


def accelerate_config(plan: Plan) -> str:
    """The run's own accelerate config file (JSON), named by ``--config_file``.

    It holds only what the flags cannot say (no DeepSpeed, FSDP or TPU from accelerate's side:
    sd-scripts sets DeepSpeed up itself); every other value is on the command line.
    """
    la = plan.launch
    data = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU" if la.num_processes > 1 else "NO",
        "num_processes": la.num_processes,
        "num_machines": la.num_machines,
        "mixed_precision": plan.training.mixed_precision,
        "use_cpu": False,
        "debug": False,
        "downcast_bf16": "no",
    }
    return json.dumps(data, indent=2) + "\n"


def env_refs(argv: Sequence[str]) -> list[str]:
    """The environment variables an argv reads at run time ("$NAME" arguments)."""
    return [name for arg in argv if (name := env_ref(arg)) is not None]


def expand_env_refs(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``argv`` with every "$NAME" argument replaced by the variable's value.

    Raises ValueError naming the variables that are not set.
    """
    missing = [name for name in env_refs(argv) if not env.get(name)]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        msg = (
            f"the launch reads {names} from the environment, and it is not set — start it "
            "where the scheduler sets it, or give launch.machine_rank / launch.main_process_ip "
            "as values (--set launch.machine_rank=1)"
        )
        raise ValueError(msg)
    return [env[name] if (name := env_ref(arg)) is not None else arg for arg in argv]


def build_launch(plan: Plan, *, python: str | None, sd_scripts: Path, files: RunDir) -> Launch:
    """The command `make` prints and `launch` runs."""
    prefix = accelerate_prefix(python)
    flags = launcher_flags(plan, config_file=files.accelerate_config)
    argv = [
        *prefix,
        *flags,
        str(sd_scripts / plan.script_name),
        "--config_file",
        str(files.config_toml),
        "--dataset_config",
        str(files.dataset_toml),
    ]
    # sd-scripts imports `networks.lora` by module name: run from its folder.
    return Launch(argv=argv, cwd=sd_scripts, prefix=prefix, flags=flags)


def posix_display(argv: Sequence[str]) -> str:
    """The argv as one POSIX shell line ("$NAME" arguments expand from the environment)."""
    return " ".join(
        f'"${{{name}:?}}"' if (name := env_ref(a)) is not None else shlex.quote(a) for a in argv
    )


def powershell_quote(arg: str) -> str:
    """A PowerShell single-quoted literal (no expansion; a quote is written twice)."""
    return "'" + arg.replace("'", "''") + "'"


def powershell_display(argv: Sequence[str]) -> str:
    """The argv as one PowerShell line: `& 'exe' 'arg' ...` ("$NAME" reads $env:NAME)."""
    return "& " + " ".join(
        f"$env:{name}" if (name := env_ref(a)) is not None else powershell_quote(a) for a in argv
    )


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
