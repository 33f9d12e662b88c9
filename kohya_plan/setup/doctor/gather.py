"""The doctor's one I/O part: the probe script run ONCE in the trainer's interpreter
(scripts/probe.py prints JSON), and the rest read from kohya-plan's side (the checkout's
commit and requirements, nvidia-smi, the Hugging Face token's presence, tokenizer folders,
free disk)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.inputs.installation import managed_installation
from kohya_plan.setup.choices import requirement_pins

if TYPE_CHECKING:
    from kohya_plan.plan import Plan

from kohya_plan.setup.doctor.facts import (
    CORE_PACKAGES,
    OPTIMIZER_PACKAGES,
    PROBE_PREFIX,
    PROBE_TIMEOUT_S,
    Diagnosis,
    DoctorFacts,
    PlanNeeds,
    plan_needs,
)
from kohya_plan.setup.doctor.rules import worst

# --- gathering (I/O) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The trainer a doctor (or selftest) looks at, and where each piece came from."""

    sd_scripts: Path
    sd_scripts_source: str
    python: str | None
    python_source: str


def locate(
    plan: Plan | None = None,
    plan_dir: Path | None = None,
    *,
    sd_scripts: Path | None = None,
    python: str | None = None,
) -> Target:
    """The sd-scripts checkout and Python a launch would use (options > plan > defaults)."""
    from kohya_plan.inputs.trainer import find_python, find_sd_scripts

    launch = plan.launch if plan is not None else None
    if sd_scripts is not None:
        sd, sd_source = sd_scripts.expanduser().absolute(), "--sd-scripts"
    elif launch is not None and launch.sd_scripts is not None:
        sd, sd_source = launch.sd_scripts, "launch.sd_scripts"
    else:
        sd = find_sd_scripts(None)
        sd_source = _source_of_sd(sd)
    if python is not None:
        return Target(sd, sd_source, python, "--python")
    chosen = launch.python if launch is not None else None
    found = find_python(chosen, plan_dir or Path(), sd)
    if chosen:
        source = "launch.python"
    elif os.environ.get("KOHYA_SD_PYTHON"):
        source = "KOHYA_SD_PYTHON"
    else:
        installed = managed_installation()
        if installed is not None and found == str(installed.python):
            source = f"managed installation in {installed.record.parent.parent}"
        elif found is not None and Path(found).parent.parent.name == ".venv-sd":
            source = ".venv-sd beside the checkout"
        else:
            source = "this Python" if found else "none found"
    return Target(sd, sd_source, found, source)


def _source_of_sd(sd: Path) -> str:
    if os.environ.get("KOHYA_SD_SCRIPTS"):
        return "KOHYA_SD_SCRIPTS"
    installed = managed_installation()
    if installed is not None and installed.sd_scripts == sd:
        return f"managed installation in {installed.record.parent.parent}"
    return "vendor/sd-scripts of this checkout"


def _probe_packages(needs: PlanNeeds | None, pins: dict[str, str | None] | None) -> list[str]:
    names = list(CORE_PACKAGES) + list(OPTIMIZER_PACKAGES) + list(pins or {})
    if needs is not None:
        names += needs.packages
    return list(dict.fromkeys(names))


def run_probe(
    python: str, sd_scripts: Path, packages: list[str], imports: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """The probe's JSON from the trainer's interpreter, or (None, why it failed)."""
    from kohya_plan.run.capture import capture
    from kohya_plan.setup.install import script_path

    argv = [
        python,
        str(script_path("probe.py")),
        "--sd-scripts",
        str(sd_scripts) if sd_scripts.is_dir() else "",
        "--packages",
        ",".join(packages),
        "--imports",
        ",".join(imports),
    ]
    try:
        status, out = capture(argv, PROBE_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return None, str(exc)
    for line in out.splitlines():
        if line.startswith(PROBE_PREFIX):
            try:
                data: dict[str, Any] = json.loads(line[len(PROBE_PREFIX) :])
            except ValueError as exc:
                return None, f"unreadable probe output ({exc})"
            return data, None
    last = (out.strip().splitlines() or ["(no output)"])[-1]
    return None, f"exit status {status}: {last}"


def _hf_token_source() -> str | None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name):
            return f"${name}"
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    path = Path(constants.HF_TOKEN_PATH)
    try:
        return str(path) if path.is_file() and path.read_text().strip() else None
    except OSError:
        return None


def _free(path: Path) -> int | None:
    from kohya_plan.inputs.hardware import existing_parent

    try:
        return shutil.disk_usage(existing_parent(path)).free
    except OSError:
        return None


def gather(
    plan_path: Path | None = None,
    *,
    sd_scripts: Path | None = None,
    python: str | None = None,
    target: Target | None = None,
) -> DoctorFacts:
    """Everything the doctor looks at, for a plan or for the default installation
    (`target`, when given, is what `locate` found already)."""
    from kohya_plan.inputs import hub
    from kohya_plan.inputs.hardware import NVIDIA_SMI, query_gpus
    from kohya_plan.options import sd_scripts_commit
    from kohya_plan.run.capture import capture
    from kohya_plan.setup.choices import parse_cuda_version
    from kohya_plan.setup.install import git_head

    plan = None
    needs = None
    if plan_path is not None:
        from kohya_plan.loading import load_plan

        plan = load_plan(plan_path)
        needs = plan_needs(plan, plan_path)
    if target is None:
        target = locate(
            plan, plan_path.parent if plan_path else None, sd_scripts=sd_scripts, python=python
        )
    installed = managed_installation()
    expected_torch = None
    if installed is not None and target.python == str(installed.python):
        expected_torch = installed.torch.partition(" ")[0].partition("==")[2] or None
    requirements = None
    req_file = target.sd_scripts / "requirements.txt"
    if req_file.is_file():
        requirements = requirement_pins(req_file.read_text(encoding="utf-8", errors="replace"))
    probe: dict[str, Any] | None = None
    probe_error: str | None = "no interpreter"
    if target.python is not None:
        probe, probe_error = run_probe(
            target.python,
            target.sd_scripts,
            _probe_packages(needs, requirements),
            ["torchvision", "accelerate"],
        )
    smi_gpus: tuple[str, ...] | None = None
    driver = None
    if shutil.which(NVIDIA_SMI) is not None:
        gpus, _ = query_gpus()
        smi_gpus = tuple(g.name for g in gpus)
        try:
            driver = parse_cuda_version(capture([NVIDIA_SMI], 10.0)[1])
        except (OSError, TimeoutError):
            driver = None
    family = needs.family if needs is not None else "sd15"
    cache = (
        plan.model.tokenizer_cache_dir
        if plan is not None and plan.model.tokenizer_cache_dir is not None
        else hub.default_tokenizer_cache()
    )
    tokenizers = {
        source.repo_id: hub.tokenizer_ready(cache / source.folder, source)
        for source in hub.TOKENIZERS.get(family, ())
    }
    disks = [("Hugging Face cache", hub.hub_cache_dir())]
    if needs is not None:
        disks.append(("outputs", needs.output_dir))
    return DoctorFacts(
        python=target.python,
        python_source=target.python_source,
        sd_scripts=target.sd_scripts,
        sd_scripts_source=target.sd_scripts_source,
        snapshot_commit=sd_scripts_commit(),
        sd_scripts_found=(target.sd_scripts / "train_network.py").is_file(),
        probe=probe,
        probe_error=probe_error,
        checkout_commit=git_head(target.sd_scripts) if target.sd_scripts.is_dir() else None,
        requirements=requirements,
        smi_gpus=smi_gpus,
        driver_cuda=driver,
        hf_token=_hf_token_source(),
        tokenizer_cache=cache,
        tokenizers=tokenizers,
        disks=tuple((what, path, _free(path)) for what, path in disks),
        needs=needs,
        expected_torch=expected_torch,
    )


def report_json(facts: DoctorFacts, diagnoses: list[Diagnosis]) -> dict[str, Any]:
    """The `doctor --json` document (the probe's raw facts included)."""
    return {
        "ok": worst(diagnoses) != "error",
        "python": facts.python,
        "sd_scripts": str(facts.sd_scripts),
        "snapshot_commit": facts.snapshot_commit,
        "checkout_commit": facts.checkout_commit,
        "diagnoses": [d.to_json() for d in diagnoses],
        "probe": facts.probe,
    }
