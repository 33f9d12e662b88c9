"""`kohya-plan doctor [PLAN]`: what is wrong with the training environment, each with its fix.

`gather` is the one I/O function: it runs the probe script ONCE in the trainer's interpreter
(scripts/probe.py prints JSON) and reads the rest from kohya-plan's side (the checkout's
commit and requirements, nvidia-smi, the Hugging Face token's presence, tokenizer folders,
free disk). `evaluate` turns those facts into diagnoses and is pure, so every rule is tested
with made-up probe output.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kohya_plan.inputs.accelerate_config import changing_keys
from kohya_plan.inputs.installation import managed_installation
from kohya_plan.setup.choices import MIN_TORCH, release, requirement_pins, torchvision_for

if TYPE_CHECKING:
    from kohya_plan.plan import Plan

Status = Literal["ok", "info", "warn", "error"]
GIB = 1 << 30
PROBE_PREFIX = "KOHYA_PLAN_PROBE "
PROBE_TIMEOUT_S = 180.0
# Always reported; a plan adds its optimizer's package and xformers.
CORE_PACKAGES = (
    "torch",
    "torchvision",
    "accelerate",
    "transformers",
    "diffusers",
    "safetensors",
    "bitsandbytes",
    "library",
)
OPTIMIZER_PACKAGES = ("dadaptation", "prodigyopt", "lion-pytorch", "schedulefree")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One finding of the doctor: what it concerns, how bad, what was seen, the exact fix."""

    id: str
    status: Status
    subject: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "status": self.status,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class PlanNeeds:
    """What one plan asks of the environment."""

    plan: str
    family: str
    optimizer: str
    packages: tuple[str, ...]
    attention: str
    mixed_precision: str
    fp8: bool
    num_processes: int
    output_dir: Path
    output_bytes: int


@dataclass(frozen=True)
class DoctorFacts:
    """Everything `gather` learned; `probe` is the probe script's JSON (None if it failed)."""

    python: str | None
    python_source: str
    sd_scripts: Path
    sd_scripts_source: str
    snapshot_commit: str
    sd_scripts_found: bool = False  # train_network.py is there
    probe: dict[str, Any] | None = None
    probe_error: str | None = None
    checkout_commit: str | None = None
    requirements: dict[str, str | None] | None = None
    smi_gpus: tuple[str, ...] | None = None  # names nvidia-smi lists; None: no nvidia-smi
    driver_cuda: tuple[int, int] | None = None
    hf_token: str | None = None  # where a token comes from, never the token itself
    tokenizer_cache: Path | None = None
    tokenizers: dict[str, bool] = field(default_factory=dict)
    disks: tuple[tuple[str, Path, int | None], ...] = ()
    needs: PlanNeeds | None = None
    expected_torch: str | None = None  # the torch `kohya-plan setup` installed there


# --- evaluation (pure) ----------------------------------------------------------------------


def evaluate(facts: DoctorFacts) -> list[Diagnosis]:
    """Every diagnosis for the facts, in the order a person fixes them."""
    found: list[Diagnosis] = []
    found += _interpreter(facts)
    found += _checkout(facts)
    if facts.probe is not None:
        found += _torch(facts)
        found += _packages(facts)
        found += _accelerate_config(facts)
    found += _gpus(facts)
    found += _plan(facts)
    found += _hub(facts)
    found += _disks(facts)
    return found


def _setup_fix(facts: DoctorFacts) -> str:
    if facts.python_source.startswith("managed"):
        return "run `kohya-plan setup` (it checks and repairs)"
    return f"run `kohya-plan setup`, or repair {facts.python}"


def _pip_fix(facts: DoctorFacts, spec: str) -> str:
    return f"`{facts.python or 'python'} -m pip install {spec}`"


def _interpreter(facts: DoctorFacts) -> list[Diagnosis]:
    if facts.python is None:
        return [
            Diagnosis(
                "python-missing",
                "error",
                "python",
                "no Python with sd-scripts' requirements was found",
                "run `kohya-plan setup`, or set launch.python (or KOHYA_SD_PYTHON)",
            )
        ]
    if facts.probe is None:
        return [
            Diagnosis(
                "python-broken",
                "error",
                "python",
                f"{facts.python} ({facts.python_source}) cannot run the probe: {facts.probe_error}",
                _setup_fix(facts),
            )
        ]
    py = facts.probe["python"]
    venv = "" if py.get("prefix") != py.get("base_prefix") else " (not a virtual environment)"
    return [
        Diagnosis(
            "python",
            "ok",
            "python",
            f"Python {py['version']} at {facts.python} ({facts.python_source}){venv}",
        )
    ]


def _checkout(facts: DoctorFacts) -> list[Diagnosis]:
    where = f"{facts.sd_scripts} ({facts.sd_scripts_source})"
    if not facts.sd_scripts_found:
        return [
            Diagnosis(
                "sd-scripts-missing",
                "error",
                "sd-scripts",
                f"no train_network.py in {where}",
                "run `kohya-plan setup`, or set launch.sd_scripts (or KOHYA_SD_SCRIPTS)",
            )
        ]
    want = facts.snapshot_commit
    if facts.checkout_commit is None:
        return [
            Diagnosis(
                "sd-scripts-commit",
                "info",
                "sd-scripts",
                f"{where} is not a git checkout: its commit is unknown (kohya-plan's options are "
                f"those of {want[:10]})",
            )
        ]
    if facts.checkout_commit != want:
        fix = f"`git -C {facts.sd_scripts} checkout {want}`"
        if facts.sd_scripts_source.startswith("managed"):
            fix = "run `kohya-plan setup` (moves the managed checkout back)"
        return [
            Diagnosis(
                "sd-scripts-commit",
                "warn",
                "sd-scripts",
                f"{where} is at commit {facts.checkout_commit[:10]}, but kohya-plan checks "
                f"plans against the options of {want[:10]}: options may differ",
                fix,
            )
        ]
    return [Diagnosis("sd-scripts", "ok", "sd-scripts", f"{where} at commit {want[:10]}")]


def _version(facts: DoctorFacts, name: str) -> str | None:
    assert facts.probe is not None
    value = facts.probe.get("packages", {}).get(name)
    return str(value) if value is not None else None


def _torch(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    info = facts.probe.get("torch") or {}
    found: list[Diagnosis] = []
    if "error" in info:
        missing = _version(facts, "torch") is None
        return [
            Diagnosis(
                "torch-missing" if missing else "torch-broken",
                "error",
                "torch",
                "not installed" if missing else f"does not import: {info['error']}",
                _setup_fix(facts),
            )
        ]
    version = str(info["version"])
    parts = release(version)
    build = f"CUDA {info['cuda_build']} build" if info.get("cuda_build") else "CPU-only build"
    if info.get("hip_build"):
        build = f"ROCm {info['hip_build']} build"
    if len(parts) >= 2 and parts[:2] < MIN_TORCH:
        found.append(
            Diagnosis(
                "torch-version",
                "error",
                "torch",
                f"{version} is too old: sd-scripts needs {MIN_TORCH[0]}.{MIN_TORCH[1]} or later",
                _setup_fix(facts) + " to install the tested torch",
            )
        )
    vision = _version(facts, "torchvision")
    vision_error = facts.probe.get("imports", {}).get("torchvision")
    if vision is None:
        found.append(
            Diagnosis(
                "torchvision-missing", "error", "torchvision", "not installed", _setup_fix(facts)
            )
        )
    else:
        try:
            wanted = torchvision_for(version)
        except ValueError:
            wanted = None
        if wanted is not None and release(vision)[:2] != release(wanted)[:2]:
            found.append(
                Diagnosis(
                    "torchvision-mismatch",
                    "error",
                    "torchvision",
                    f"{vision} is not the release made for torch {version} (that is {wanted})",
                    _pip_fix(facts, f"torchvision=={wanted}") + " or " + _setup_fix(facts),
                )
            )
        elif vision_error:
            found.append(
                Diagnosis(
                    "torchvision-broken",
                    "error",
                    "torchvision",
                    f"{vision} does not import: {vision_error}",
                    _pip_fix(facts, f"torchvision=={wanted}") + " or " + _setup_fix(facts),
                )
            )
    expected = facts.expected_torch
    if expected and release(version)[:3] != release(expected)[:3]:
        found.append(
            Diagnosis(
                "torch-changed",
                "warn",
                "torch",
                f"{version} is not the {expected} that `kohya-plan setup` installed here",
                "run `kohya-plan setup` (puts it back)",
            )
        )
    cuda_build = info.get("cuda_build")
    driver = facts.driver_cuda
    if cuda_build and driver is not None and release(str(cuda_build))[:2] > driver:
        found.append(
            Diagnosis(
                "torch-cuda-driver",
                "error",
                "torch",
                f"{version} is a CUDA {cuda_build} build; the NVIDIA driver runs CUDA up to "
                f"{driver[0]}.{driver[1]}",
                "update the NVIDIA driver, or `kohya-plan setup --torch-index "
                f"https://download.pytorch.org/whl/cu{driver[0]}{driver[1]}`",
            )
        )
    if not found:
        found.append(
            Diagnosis("torch", "ok", "torch", f"{version} ({build}), torchvision {vision}")
        )
    return found


def _packages(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    packages = facts.probe.get("packages", {})
    imports = facts.probe.get("imports", {})
    pins = dict(facts.requirements or {})
    if not pins:
        pins = {"accelerate": None, "transformers": None, "diffusers": None}
    found: list[Diagnosis] = []
    matched = 0
    for name, want in pins.items():
        if name not in packages:
            continue  # not asked of the probe (e.g. a requirement kohya-plan does not track)
        got = packages.get(name)
        if got is None:
            spec = f"{name}=={want}" if want else name
            found.append(
                Diagnosis(
                    f"{name}-missing",
                    "error",
                    name,
                    "not installed (sd-scripts needs it)",
                    _setup_fix(facts) + ", or " + _pip_fix(facts, spec),
                )
            )
        elif want is not None and str(got).split("+")[0] != want:
            found.append(
                Diagnosis(
                    f"{name}-version",
                    "warn",
                    name,
                    f"{got} installed; sd-scripts pins {want} (other versions may break it)",
                    _pip_fix(facts, f"{name}=={want}"),
                )
            )
        elif imports.get(name):
            found.append(
                Diagnosis(
                    f"{name}-broken",
                    "error",
                    name,
                    f"{got} does not import: {imports[name]}",
                    _setup_fix(facts),
                )
            )
        else:
            matched += 1
    shown = ", ".join(
        f"{n} {packages[n]}"
        for n in ("accelerate", "transformers", "diffusers", "bitsandbytes")
        if packages.get(n)
    )
    if matched:
        found.append(
            Diagnosis(
                "requirements",
                "ok",
                "packages",
                f"{matched} of sd-scripts' requirements as pinned ({shown})",
            )
        )
    if packages.get("library") is None and facts.probe.get("sd_scripts", {}).get("library_error"):
        found.append(
            Diagnosis(
                "library-missing",
                "error",
                "sd-scripts",
                "its package `library` is not installed in this Python: "
                + str(facts.probe["sd_scripts"]["library_error"]),
                _setup_fix(facts) + f", or {_pip_fix(facts, '-e ' + str(facts.sd_scripts))}",
            )
        )
    return found


def _accelerate_config(facts: DoctorFacts) -> list[Diagnosis]:
    assert facts.probe is not None
    info = facts.probe.get("accelerate_config") or {}
    path = info.get("path")
    if not path or not info.get("exists"):
        return []
    if info.get("error"):
        return [
            Diagnosis(
                "accelerate-config",
                "error",
                "accelerate config",
                f"{path} cannot be read ({info['error']}); `accelerate launch` reads it on every "
                "start and fails",
                f"move it away: `mv {path} {path}.bak`",
            )
        ]
    values = info.get("values")
    changing = changing_keys(values if isinstance(values, dict) else {})
    if not changing:
        return [
            Diagnosis(
                "accelerate-config",
                "ok",
                "accelerate config",
                f"{path} sets nothing that kohya-plan does not pass itself",
            )
        ]
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(changing.items()))
    return [
        Diagnosis(
            "accelerate-config",
            "warn",
            "accelerate config",
            f"{path} would change every `accelerate launch` started by hand: {shown} "
            "(kohya-plan's launches do not read it: they pass their own --config_file)",
            f"move it away (`mv {path} {path}.bak`); kohya-plan passes the launcher flags it "
            "needs, and launch.gpu_ids / launch.num_processes choose GPUs",
        )
    ]


def _devices(facts: DoctorFacts) -> list[dict[str, Any]]:
    if facts.probe is None:
        return []
    info = facts.probe.get("torch") or {}
    return list(info.get("devices") or [])


def _gpus(facts: DoctorFacts) -> list[Diagnosis]:
    info = (facts.probe or {}).get("torch") or {}
    if facts.probe is None or "error" in info:
        return []
    devices = _devices(facts)
    seen = facts.smi_gpus or ()
    if not info.get("cuda_available"):
        if seen:
            if not info.get("cuda_build"):
                return [
                    Diagnosis(
                        "torch-cpu-build",
                        "error",
                        "GPU",
                        f"nvidia-smi lists {len(seen)} GPU(s) ({seen[0]}) but torch "
                        f"{info.get('version')} is a CPU-only build",
                        "`kohya-plan setup --cuda` (installs a CUDA build)",
                    )
                ]
            why = info.get("cuda_error") or "torch.cuda.is_available() is False"
            return [
                Diagnosis(
                    "cuda-unavailable",
                    "error",
                    "GPU",
                    f"nvidia-smi lists {len(seen)} GPU(s) but torch cannot use them: {why}",
                    "check the driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES",
                )
            ]
        mps = " (Apple MPS is available)" if info.get("mps_available") else ""
        return [
            Diagnosis(
                "no-gpu",
                "warn",
                "GPU",
                "no CUDA GPU: sd-scripts trains on the CPU, seconds to minutes per step" + mps,
                'fine for `kohya-plan selftest`; for a CPU run set training.mixed_precision = "no"',
            )
        ]
    found = []
    for device in devices:
        cap = tuple(device.get("capability") or (0, 0))
        memory = device.get("memory_bytes", 0) / GIB
        bf16 = "yes" if cap >= (8, 0) else "no"
        fp8 = "yes" if cap >= (8, 9) else "no"
        found.append(
            Diagnosis(
                "gpu",
                "ok",
                f"GPU {device.get('index')}",
                f"{device.get('name')}, {memory:.1f} GiB, compute capability "
                f"{cap[0]}.{cap[1]}: bf16 {bf16}, fp8 {fp8}",
            )
        )
    return found


def _plan(facts: DoctorFacts) -> list[Diagnosis]:
    needs = facts.needs
    if needs is None or facts.probe is None:
        return []
    found = []
    packages = facts.probe.get("packages", {})
    for name in needs.packages:
        if packages.get(name) is None:
            fix = _pip_fix(facts, name)
            why = f"optimizer.type = {needs.optimizer!r}"
            if name == "xformers":
                fix += ' (a build matching torch), or set training.attention = "sdpa"'
                why += ", training.attention = 'xformers'"
            elif name == "deepspeed":
                fix += (
                    " (DS_BUILD_OPS=0 builds its ops when first used), or remove [launch.deepspeed]"
                )
                why = "[launch.deepspeed]"
            found.append(
                Diagnosis(
                    f"{name}-missing",
                    "error",
                    name,
                    f"{needs.plan} needs it ({why}) and it is not installed",
                    fix,
                )
            )
    devices = _devices(facts)
    cuda = bool((facts.probe.get("torch") or {}).get("cuda_available"))
    if needs.mixed_precision == "fp16" and not cuda:
        found.append(
            Diagnosis(
                "plan-fp16-cpu",
                "error",
                "training.mixed_precision",
                f'{needs.plan} asks for "fp16", which needs a CUDA GPU (accelerate stops on '
                "the CPU)",
                'set training.mixed_precision = "no" for a CPU run',
            )
        )
    caps = [tuple(d.get("capability") or (0, 0)) for d in devices]
    if needs.mixed_precision == "bf16" and caps and min(caps) < (8, 0):
        found.append(
            Diagnosis(
                "plan-bf16",
                "error",
                "training.mixed_precision",
                f'{needs.plan} asks for "bf16"; this GPU (compute {caps[0][0]}.{caps[0][1]}) has '
                "no bf16 (it needs 8.0, Ampere, or newer)",
                'set training.mixed_precision = "fp16"',
            )
        )
    if needs.fp8 and (not caps or min(caps) < (8, 9)):
        found.append(
            Diagnosis(
                "plan-fp8",
                "error",
                "launch.extra.fp8_base",
                f"{needs.plan} asks for fp8, which needs compute capability 8.9 (Ada) or newer",
                "remove fp8_base from launch.extra",
            )
        )
    if cuda and needs.num_processes > len(devices):
        found.append(
            Diagnosis(
                "plan-gpus",
                "error",
                "launch.num_processes",
                f"{needs.plan} starts {needs.num_processes} processes; torch sees "
                f"{len(devices)} GPU(s)",
                f"set launch.num_processes = {max(1, len(devices))}",
            )
        )
    if not found:
        found.append(
            Diagnosis("plan", "ok", "plan", f"{needs.plan}: everything it needs is installed")
        )
    return found


def _hub(facts: DoctorFacts) -> list[Diagnosis]:
    found = []
    if facts.tokenizer_cache is not None:
        missing = [name for name, ready in facts.tokenizers.items() if not ready]
        if missing:
            found.append(
                Diagnosis(
                    "tokenizer-cache",
                    "info",
                    "tokenizer",
                    f"{', '.join(missing)} not in {facts.tokenizer_cache}: `kohya-plan make` "
                    "fetches it from the Hugging Face Hub (needs the network once)",
                    "run `kohya-plan make PLAN` once while online",
                )
            )
        else:
            found.append(
                Diagnosis(
                    "tokenizer-cache",
                    "ok",
                    "tokenizer",
                    f"{', '.join(facts.tokenizers)} cached in {facts.tokenizer_cache}",
                )
            )
    if facts.hf_token:
        found.append(
            Diagnosis("hf-login", "ok", "Hugging Face", f"logged in (token from {facts.hf_token})")
        )
    else:
        found.append(
            Diagnosis(
                "hf-login",
                "info",
                "Hugging Face",
                "not logged in: only gated or private models need it",
                "`hf auth login` (or set HF_TOKEN)",
            )
        )
    return found


def _disks(facts: DoctorFacts) -> list[Diagnosis]:
    found = []
    needs = facts.needs
    for what, path, free in facts.disks:
        if free is None:
            continue
        want = 10 * GIB if what == "Hugging Face cache" else 2 * GIB
        if needs is not None and what == "outputs":
            want = needs.output_bytes + GIB
        text = f"{free / GIB:.1f} GiB free at {path}"
        if free < want:
            found.append(
                Diagnosis(
                    "disk",
                    "error" if free < want / 4 else "warn",
                    f"disk ({what})",
                    f"{text}; about {want / GIB:.1f} GiB is wanted there",
                    "free some space, or point it elsewhere"
                    + (" (HF_HOME)" if what == "Hugging Face cache" else ""),
                )
            )
        else:
            found.append(Diagnosis("disk", "ok", f"disk ({what})", text))
    return found


def worst(diagnoses: list[Diagnosis]) -> Status:
    """The most serious status among the diagnoses."""
    order: list[Status] = ["ok", "info", "warn", "error"]
    return max((d.status for d in diagnoses), key=order.index, default="ok")


# --- what a plan needs (pure) ---------------------------------------------------------------


def optimizer_packages(optimizer: str) -> tuple[str, ...]:
    """The packages sd-scripts imports for an optimizer type (train_util.get_optimizer)."""
    lowered = optimizer.lower()
    if lowered.startswith("dadapt"):
        return ("dadaptation",)
    if lowered == "prodigy":
        return ("prodigyopt",)
    if lowered.endswith("schedulefree"):
        return ("schedulefree",)
    if "8bit" in lowered or lowered.startswith("paged"):
        return ("bitsandbytes",)
    if lowered == "lion":
        return ("lion-pytorch",)
    return ()


def plan_needs(plan: Plan, plan_path: Path) -> PlanNeeds:
    """What `plan` asks of the environment."""
    from kohya_plan.checks import lora_file_bytes

    packages = list(optimizer_packages(plan.optimizer.type))
    if plan.training.attention == "xformers":
        packages.append("xformers")
    if plan.launch.deepspeed is not None:
        packages.append("deepspeed")  # sd-scripts imports it for --deepspeed
    epochs = plan.training.epochs or 1
    every = plan.training.save_every_n_epochs or 0
    files = 1 + (max(0, (epochs - 1) // every) if every else 0)
    return PlanNeeds(
        plan=str(plan_path),
        family=plan.model.family,
        optimizer=plan.optimizer.type,
        packages=tuple(packages),
        attention=plan.training.attention,
        mixed_precision=plan.training.mixed_precision,
        fp8=bool(plan.launch.extra.get("fp8_base")),
        num_processes=plan.launch.num_processes,
        output_dir=plan.output.dir,
        output_bytes=lora_file_bytes(plan) * files,
    )


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
