"""`kohya-plan selftest`: prove an installation end to end with a few real training steps.

Builds (once, cached under the kohya-plan home) the CLIP tokenizer and a tiny random model of
the family, writes a 4-image data set and a plan, runs 4 real optimization steps through
kohya-plan's own `launch` (workflows.launch: prepare + run), then checks what a person would:
the run succeeded, the LoRA file is a safetensors file with LoRA weights, summary.json agrees,
and TensorBoard holds a finite loss for each step. It reports s/step and peak memory.

The tiny SD1.5 model still has sd-scripts' full-size U-Net (its loader hard-codes the shape):
building it takes about half a minute, ~8 GiB of RAM and 3.5 GB of disk, once.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan import rundir
from kohya_plan.errors import KohyaPlanError, UsageError
from kohya_plan.setup.install import script_path
from kohya_plan.templates import PLAN_FILE

if TYPE_CHECKING:
    from collections.abc import Callable

    from kohya_plan.setup.doctor import Diagnosis, Target
    from kohya_plan.workflows.watch import RunView

FAMILIES = ("sd15",)
TOKENIZER_FOLDER = "openai_clip-vit-large-patch14"
OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"  # ships OpenAI's BPE vocabulary (1.5 MB)
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
DONE = ".kohya-plan-complete"
STEPS = 4  # 4 images, batch 2, 2 epochs
_BUILD_TIMEOUT_S = 1800.0


class SelftestError(KohyaPlanError):
    """The installation could not be proven; the message says what failed and what to do."""

    exit_code = 1


@dataclass(frozen=True)
class SelftestOptions:
    """What `kohya-plan selftest` was asked for."""

    family: str = "sd15"
    keep: bool = False
    sd_scripts: Path | None = None
    python: str | None = None
    cache: Path | None = None  # default: <kohya-plan home>/selftest


@dataclass(frozen=True, slots=True)
class Verdict:
    """One thing the selftest checked."""

    what: str
    passed: bool
    detail: str


@dataclass
class SelftestResult:
    """What the selftest measured and checked."""

    run_dir: Path
    work_dir: Path
    kept: bool
    device: str
    phases: list[tuple[str, float]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    steps_done: int = 0
    seconds_per_step: float | None = None
    wall_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    lora_file: Path | None = None
    lora_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    def to_json(self) -> dict[str, Any]:
        """The `selftest --json` document."""
        return {
            "ok": self.ok,
            "run_dir": str(self.run_dir),
            "kept": self.kept,
            "device": self.device,
            "phases": {name: round(seconds, 2) for name, seconds in self.phases},
            "checks": [
                {"what": v.what, "passed": v.passed, "detail": v.detail} for v in self.verdicts
            ],
            "steps_done": self.steps_done,
            "seconds_per_step": self.seconds_per_step,
            "wall_s": self.wall_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_gpu_bytes": self.peak_gpu_bytes,
            "lora_file": str(self.lora_file) if self.lora_file else None,
            "lora_bytes": self.lora_bytes,
        }


# --- small pure pieces ----------------------------------------------------------------------


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG (no Pillow needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = (b"\x00" + bytes(rgb) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


_IMAGES = (
    ((200, 40, 40), "selftest, red hair, smiling"),
    ((40, 200, 40), "selftest, green shirt, standing"),
    ((40, 40, 200), "selftest, blue sky, landscape"),
    ((200, 200, 40), "selftest, yellow field, wide shot"),
)


def plan_text(
    *,
    model: Path,
    tokenizer_cache: Path,
    sd_scripts: Path,
    python: str,
    mixed_precision: str,
) -> str:
    """The selftest's plan: 4 images at 64 px, batch 2, 2 epochs = 4 steps, rank 4, AdamW."""
    from kohya_plan.render.toml_text import toml_string

    return f"""# Made by `kohya-plan selftest`: 4 real optimization steps on a tiny random model.
[model]
base = {toml_string(str(model))}
tokenizer_cache_dir = {toml_string(str(tokenizer_cache))}

[dataset]
train_dir = "data"
resolution = 64
min_bucket_reso = 64
max_bucket_reso = 128

[network]
dim = 4
alpha = 2

[optimizer]
type = "AdamW"
learning_rate = 1e-4
unet_lr = 1e-4
text_encoder_lr = 5e-5
scheduler = "constant"

[training]
epochs = 2
batch_size = 2
mixed_precision = {toml_string(mixed_precision)}
save_every_n_epochs = 1
max_data_loader_n_workers = 0

[output]
dir = "out"
name = "selftest"
save_precision = "float"

[launch]
sd_scripts = {toml_string(str(sd_scripts))}
python = {toml_string(python)}
"""


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names in a .safetensors file's header (raises ValueError when it is not one)."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            msg = f"{path} is too short for a safetensors file"
            raise ValueError(msg)
        (size,) = struct.unpack("<Q", head)
        if size > 100_000_000:
            msg = f"{path}: header of {size} bytes is not a safetensors header"
            raise ValueError(msg)
        header = json.loads(fh.read(size))
    return [k for k in header if k != "__metadata__"]


def judge(
    summary: dict[str, Any], lora: Path, scalars: dict[str, list[tuple[int, float]]]
) -> list[Verdict]:
    """What the run must show: success, all steps, a LoRA file, finite TensorBoard losses."""
    verdicts = [
        Verdict(
            "run succeeded",
            summary.get("outcome") == "succeeded",
            str(summary.get("outcome")) + (f": {summary['cause']}" if summary.get("cause") else ""),
        ),
        Verdict(
            f"{STEPS} optimization steps",
            summary.get("steps_done") == STEPS and summary.get("steps_total") == STEPS,
            f"{summary.get('steps_done')} of {summary.get('steps_total')}",
        ),
    ]
    try:
        keys = safetensors_keys(lora)
        lora_keys = [k for k in keys if k.startswith(("lora_unet_", "lora_te"))]
        verdicts.append(
            Verdict(
                "LoRA file",
                bool(lora_keys),
                f"{lora.name}: {len(keys)} tensors ({len(lora_keys)} LoRA), "
                f"{lora.stat().st_size:,} bytes",
            )
        )
    except (OSError, ValueError) as exc:
        verdicts.append(Verdict("LoRA file", False, str(exc)))
    losses = scalars.get("loss/current", [])
    finite = [v for _, v in losses if math.isfinite(v)]
    verdicts.append(
        Verdict(
            "TensorBoard loss",
            len(losses) == STEPS and len(finite) == STEPS,
            f"loss/current at {len(losses)} steps"
            + (f", {finite[0]:.4f} → {finite[-1]:.4f}" if finite else ""),
        )
    )
    files = [Path(str(f["path"])).name for f in summary.get("files", [])]
    verdicts.append(
        Verdict("summary lists the files", lora.name in files, ", ".join(files) or "none")
    )
    return verdicts


# --- building the lab (I/O) -----------------------------------------------------------------


def _run(argv: list[str], what: str, on_line: Callable[[str], None]) -> None:
    from kohya_plan.run.stream import stream

    try:
        result = stream(argv, on_line=on_line)
    except OSError as exc:
        msg = f"{what}: cannot run {argv[0]} ({exc})"
        raise SelftestError(msg) from None
    if result.returncode != 0:
        msg = f"{what} failed (exit status {result.returncode}):\n    " + "\n    ".join(
            result.tail[-12:]
        )
        raise SelftestError(msg)


def _bpe(cache: Path, python: str, on_line: Callable[[str], None]) -> Path:
    """OpenAI's BPE vocabulary, from the open_clip_torch wheel (downloaded once from PyPI)."""
    import sys

    downloads = cache / "downloads"
    bpe = downloads / "bpe_simple_vocab_16e6.txt.gz"
    if bpe.is_file():
        return bpe
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("open_clip_torch-*.whl"))
    if not wheels:
        last_error: SelftestError | None = None
        for pip_python in dict.fromkeys([python, sys.executable]):
            argv = [pip_python, "-m", "pip", "download", OPEN_CLIP_WHEEL, "--no-deps"]
            try:
                _run([*argv, "-d", str(downloads)], "pip download", on_line)
                break
            except SelftestError as exc:
                last_error = exc
        wheels = sorted(downloads.glob("open_clip_torch-*.whl"))
        if not wheels:
            raise last_error or SelftestError(f"no {OPEN_CLIP_WHEEL} wheel in {downloads}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        data = zf.read(BPE_MEMBER)
    tmp = bpe.with_name(bpe.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(bpe)
    return bpe


def tokenizer_cache(cache: Path, python: str, on_line: Callable[[str], None]) -> Path:
    """A --tokenizer_cache_dir holding CLIP ViT-L: the user's if complete, else built offline
    from OpenAI's vocabulary, else fetched from the Hub."""
    from kohya_plan.inputs import hub

    user = hub.default_tokenizer_cache()
    if hub.tokenizer_ready(user / TOKENIZER_FOLDER):
        return user
    mine = cache / "tokenizers"
    folder = mine / TOKENIZER_FOLDER
    if (folder / DONE).is_file():
        return mine
    try:
        bpe = _bpe(cache, python, on_line)
        partial = cache / "tokenizers.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _run(
            [python, str(script_path("make_tokenizer.py")), str(bpe), str(partial)],
            "building the CLIP tokenizer",
            on_line,
        )
        mine.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        (partial / TOKENIZER_FOLDER).replace(folder)
        shutil.rmtree(partial, ignore_errors=True)
        (folder / DONE).write_text("ok\n")
        return mine
    except SelftestError as offline:
        on_line(f"offline tokenizer failed ({offline}); trying the Hugging Face Hub")
        try:
            return hub.resolve_tokenizers("sd15", mine, progress=False)
        except Exception as exc:
            msg = (
                f"no CLIP tokenizer: building it offline failed ({offline}) and the Hub "
                f"failed ({exc}) — run `kohya-plan make PLAN` once while online"
            )
            raise SelftestError(msg) from None


def tiny_model(
    cache: Path, family: str, python: str, tokenizers: Path, on_line: Callable[[str], None]
) -> Path:
    """A random model of the family as a Diffusers folder (built once; marker written last)."""
    model = cache / f"tiny-{family}"
    if (model / DONE).is_file():
        return model
    partial = model.with_name(model.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    _run(
        [
            python,
            str(script_path(f"make_tiny_{family}.py")),
            str(partial),
            str(tokenizers / TOKENIZER_FOLDER),
        ],
        f"building the tiny {family} model",
        on_line,
    )
    partial.replace(model)
    (model / DONE).write_text("ok\n")
    return model


def write_dataset(work: Path) -> Path:
    """`<work>/data/1_selftest/img0..3.png` with captions; returns the data folder."""
    folder = work / "data" / "1_selftest"
    folder.mkdir(parents=True, exist_ok=True)
    for index, (colour, caption) in enumerate(_IMAGES):
        (folder / f"img{index}.png").write_bytes(png_bytes(64, 64, colour))
        (folder / f"img{index}.txt").write_text(caption + "\n", encoding="utf-8")
    return folder.parent


# --- the selftest ---------------------------------------------------------------------------


def _preflight(target: Target) -> tuple[list[Diagnosis], dict[str, Any]]:
    """The doctor's errors for this installation (empty when it can train) and its probe."""
    from kohya_plan.setup.doctor import evaluate, gather

    facts = gather(target=target)
    errors = [
        d
        for d in evaluate(facts)
        if d.status == "error" and not d.id.startswith(("disk", "sd-scripts-commit"))
    ]
    return errors, facts.probe or {}


def selftest(
    options: SelftestOptions,
    view_factory: Callable[[], RunView],
    on_phase: Callable[[str], None],
    on_line: Callable[[str], None],
) -> SelftestResult:
    """Build, train 4 steps, check; raises SelftestError when the installation is not usable."""
    from kohya_plan.inputs.installation import home
    from kohya_plan.run.usage import PeakUsage
    from kohya_plan.setup.doctor import locate
    from kohya_plan.trainlog.tensorboard import read_scalars
    from kohya_plan.workflows import launch as launching

    if options.family not in FAMILIES:
        msg = f"--family {options.family}: selftest knows {', '.join(FAMILIES)} (sdxl later)"
        raise UsageError(msg)
    target = locate(sd_scripts=options.sd_scripts, python=options.python)
    on_phase(f"checking the installation: {target.python} with {target.sd_scripts}")
    errors, probe = _preflight(target)
    if errors or target.python is None:
        lines = "\n  ".join(str(d) for d in errors) or "no Python for sd-scripts"
        msg = f"the installation cannot train yet:\n  {lines}\n(`kohya-plan doctor` shows all)"
        raise SelftestError(msg)
    python = target.python
    cuda = bool((probe.get("torch") or {}).get("cuda_available"))
    devices = (probe.get("torch") or {}).get("devices") or []
    bf16 = cuda and all(tuple(d.get("capability") or (0, 0)) >= (8, 0) for d in devices)
    precision = "bf16" if bf16 else "fp16" if cuda else "no"
    device = f"GPU {devices[0].get('name')} ({precision})" if cuda and devices else "CPU (fp32)"
    cache = options.cache or home() / "selftest"
    phases: list[tuple[str, float]] = []

    started = time.monotonic()
    on_phase("CLIP tokenizer (built once)")
    tokenizers = tokenizer_cache(cache, python, on_line)
    phases.append(("tokenizer", time.monotonic() - started))

    started = time.monotonic()
    on_phase(f"tiny random {options.family} model (built once: ~30 s, ~8 GiB RAM, 3.5 GB disk)")
    model = tiny_model(cache, options.family, python, tokenizers, on_line)
    phases.append(("model", time.monotonic() - started))

    work = Path(tempfile.mkdtemp(prefix="kohya-plan-selftest-"))
    write_dataset(work)
    plan_path = work / PLAN_FILE
    plan_path.write_text(
        plan_text(
            model=model,
            tokenizer_cache=tokenizers,
            sd_scripts=target.sd_scripts,
            python=python,
            mixed_precision=precision,
        ),
        encoding="utf-8",
    )
    on_phase(f"training {STEPS} steps on {device} through `kohya-plan launch`")
    started = time.monotonic()
    options_ = launching.LaunchOptions()
    prepared = launching.prepare(plan_path, [], options_)
    with PeakUsage(gpu=cuda) as peak:
        summary = launching.run(prepared, options_, view_factory)
    phases.append(("training", time.monotonic() - started))

    summary_file = prepared.run_dir / rundir.SUMMARY
    on_disk = json.loads(summary_file.read_text(encoding="utf-8"))
    lora = prepared.plan.output.dir / f"{prepared.plan.output.name}.safetensors"
    verdicts = judge(on_disk, lora, read_scalars(prepared.run_dir / rundir.LOGS))
    verdicts.insert(
        1,
        Verdict(
            rundir.SUMMARY,
            on_disk == json.loads(json.dumps(summary.to_json())),
            "written and equal to the printed summary",
        ),
    )
    result = SelftestResult(
        run_dir=prepared.run_dir,
        work_dir=work,
        kept=True,
        device=device,
        phases=phases,
        verdicts=verdicts,
        steps_done=summary.steps_done,
        seconds_per_step=summary.seconds_per_step,
        wall_s=summary.wall_s,
        peak_rss_bytes=peak.rss_bytes or None,
        peak_gpu_bytes=peak.gpu_bytes,
        lora_file=lora if lora.is_file() else None,
        lora_bytes=lora.stat().st_size if lora.is_file() else None,
    )
    if result.ok and not options.keep:
        shutil.rmtree(work, ignore_errors=True)
        result.kept = False
    return result
