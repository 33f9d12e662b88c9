"""accelerate's default config file (`accelerate config` writes it): where it is, what it says,
and what it would change of a launch.

`accelerate launch` reads ``$HF_HOME/accelerate/default_config.yaml`` (or ``.json``) whenever no
``--config_file`` is given, and fills in from it every flag that is not on the command line; for
a one-process run its ``distributed_type`` even turns on DeepSpeed or FSDP (accelerate 1.6.0,
``commands/launch.py`` ``_validate_launch_command``). kohya-plan's launches pass their own
``--config_file`` (the run folder's accelerate.json) and every flag, so the default file never
changes them; `check` and `doctor` still say what it would have changed of a launch by hand.

`read_default_config` is the I/O edge (stdlib, plus PyYAML when it is installed); the rest is pure
and shared by `check` (checks/launch.py) and `doctor` (setup/doctor.py). The trainer-side probe
(setup/scripts/probe.py) repeats the path formula and the flat YAML reading, because it runs in
the trainer's own interpreter, where kohya_plan is not importable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kohya_plan.plan import Plan

# What a default config may hold without changing kohya-plan's launch (doctor's view): the keys
# kohya-plan passes on the command line itself, and the others at accelerate's defaults.
OVERRIDDEN = frozenset(
    {
        "num_processes",
        "num_machines",
        "mixed_precision",
        "dynamo_config",
        "dynamo_backend",
        "gpu_ids",
        "machine_rank",
        "main_process_ip",
        "main_process_port",
        "rdzv_backend",
        "same_network",
    }
)
HARMLESS: dict[str, Any] = {
    "compute_environment": "LOCAL_MACHINE",
    "distributed_type": "NO",
    "use_cpu": False,
    "debug": False,
    "downcast_bf16": "no",
    "machine_rank": 0,
    "main_training_function": "main",
    "enable_cpu_affinity": False,
    "gpu_ids": "all",
    "rdzv_backend": "static",
    "same_network": True,
    "tpu_env": [],
    "tpu_use_cluster": False,
    "tpu_use_sudo": False,
    "main_process_ip": None,
    "main_process_port": None,
}


@dataclass(frozen=True, slots=True)
class AccelerateConfig:
    """The default config file accelerate would read: its path and values (or why not)."""

    path: Path
    values: dict[str, Any]
    error: str | None = None


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """accelerate's formula (commands/config/config_args.py): the YAML file, else the JSON one."""
    env = os.environ if environ is None else environ
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface")
    folder = Path(home).expanduser() / "accelerate"
    yaml_file, json_file = folder / "default_config.yaml", folder / "default_config.json"
    return yaml_file if yaml_file.is_file() or not json_file.is_file() else json_file


def flat_yaml(text: str) -> dict[str, Any]:
    """The top-level ``key: value`` lines of a YAML file (for when PyYAML is not installed)."""
    values: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line[0] in " #-" or ":" not in line:
            continue
        key, _, raw = line.partition(":")
        raw = raw.strip().strip("'\"")
        lowered = raw.lower()
        if lowered in ("true", "false"):
            values[key.strip()] = lowered == "true"
        elif raw.isdigit():
            values[key.strip()] = int(raw)
        elif raw:
            values[key.strip()] = None if lowered in ("null", "~") else raw
    return values


def read_default_config(environ: Mapping[str, str] | None = None) -> AccelerateConfig | None:
    """The default config file and its values; None when there is none."""
    path = default_config_path(environ)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:  # pragma: no cover - PyYAML comes with huggingface_hub
                data = flat_yaml(text)
            else:
                data = yaml.safe_load(text) or {}
    except Exception as exc:
        return AccelerateConfig(path, {}, f"{type(exc).__name__}: {exc}")
    if not isinstance(data, dict):
        return AccelerateConfig(path, {}, f"holds {type(data).__name__}, not a mapping")
    return AccelerateConfig(path, {str(k): v for k, v in data.items()})


def changing_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that would change a launch which passes kohya-plan's flags but no config."""
    changing = {}
    for key, value in values.items():
        if key in OVERRIDDEN:
            continue
        if key in HARMLESS and value == HARMLESS[key]:
            continue
        if value in (None, {}, [], ""):
            continue
        changing[key] = value
    return changing


def _same(a: object, b: object) -> bool:
    return str(a).strip().lower() == str(b).strip().lower()


def would_change(values: Mapping[str, Any], plan: Plan) -> list[str]:
    """What the file would have changed of this plan's launch, one phrase per setting.

    Against the plan's own values where the plan has them (``num_processes 4 (the plan: 1)``),
    else what the file switches on (DeepSpeed, FSDP, a CPU run, compiled models, …).
    """
    la = plan.launch
    distributed = "MULTI_GPU" if la.num_processes > 1 else "NO"
    planned: dict[str, object] = {
        "num_processes": la.num_processes,
        "num_machines": la.num_machines,
        "mixed_precision": plan.training.mixed_precision,
        "gpu_ids": la.gpu_ids or "all",
        "machine_rank": la.machine_rank,
        "main_process_ip": la.main_process_ip,
        "main_process_port": la.main_process_port,
        "rdzv_backend": la.rdzv_backend,
        "same_network": la.same_network,
    }
    changes: list[str] = []
    kind = values.get("distributed_type")
    if kind is not None and not _same(kind, distributed):
        text = f"distributed_type {kind} (the plan: {distributed})"
        if _same(kind, "DEEPSPEED"):
            ds = values.get("deepspeed_config")
            ds = ds if isinstance(ds, dict) else {}
            stage = ds.get("zero_stage")
            text += " — accelerate's DeepSpeed" + (f" ZeRO-{stage}" if stage is not None else "")
            for what in ("optimizer", "param"):
                device = ds.get(f"offload_{what}_device")
                if device not in (None, "none"):
                    text += f", {what} offloaded to {device}"
        elif _same(kind, "FSDP"):
            text += " — the model sharded by FSDP"
        changes.append(text)
    for key, mine in planned.items():
        if key not in values or values[key] is None:
            continue
        if key in ("main_process_ip", "main_process_port") and mine is None:
            if key == "main_process_port" and la.num_processes > 1:
                mine = 29500
            else:
                changes.append(f"{key} {values[key]} (the plan: none)")
                continue
        if not _same(values[key], mine):
            changes.append(f"{key} {values[key]} (the plan: {mine})")
    dynamo = values.get("dynamo_config")
    backend = (
        dynamo.get("dynamo_backend") if isinstance(dynamo, dict) else values.get("dynamo_backend")
    )
    if backend is not None and not _same(backend, "no"):
        changes.append(f"dynamo_backend {backend} (the plan: no)")
    for key, value in changing_keys(values).items():
        if key in ("distributed_type", "deepspeed_config", "fsdp_config", "dynamo_config"):
            continue
        changes.append(f"{key} {json.dumps(value, default=str)}")
    return changes
