#!/usr/bin/env python3
"""Compare kohya-plan's peak-VRAM estimate with what a GPU really allocates (SDXL and FLUX.1).

NOT YET RUN: no GPU was available when it was written. Run it on a machine with an NVIDIA GPU,
sd-scripts at the pinned commit and its Python (with CUDA torch):

    KOHYA_SD_SCRIPTS=/path/to/sd-scripts KOHYA_PLAN_SD_PYTHON=/path/to/venv/bin/python \\
        .venv/bin/python scripts/gpu_vram_check.py [--out results.json] [--only sdxl|flux]

For each family it trains ONE step of the tiny lab model (tests/sdlab_families.py builds and
caches it: SDXL's full-size U-Net with small text encoders; FLUX.1's DiT with 1+1 blocks and the
full-size T5-XXL) at 512x512, batch 1, bf16, gradient checkpointing, latents and text-encoder
outputs cached — through the files `kohya-plan make` renders, with the trainer wrapped so that
it prints `torch.cuda.max_memory_allocated()` at exit — and prints, beside it, the estimate
`kohya-plan check --json` gives for the same plan (`memory.peak_gib`, the same quantity: the
CUDA context is in neither). A few minutes in all (most of it building the models once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

# Runs the training script in-process and reports the peak allocation of every CUDA device.
WRAPPER = r"""
import atexit, json, runpy, sys
import torch
def report():
    if torch.cuda.is_available():
        peak = max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
        print("GPU_VRAM_CHECK " + json.dumps({"max_memory_allocated": peak}), flush=True)
atexit.register(report)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, ".")
runpy.run_path(script, run_name="__main__")
"""


def _plan(root: Path, family: str, lab: Path) -> Path:
    import sdlab_families
    from helpers import base_plan, make_images, write_plan

    make_images(root / "data" / "1_testchar", [(512, 512)] * 2)
    tokenizers = str(sdlab_families.family_tokenizers(lab))
    common = {
        "dataset": {"resolution": 512, "min_bucket_reso": 256, "max_bucket_reso": 1024},
        "optimizer": {"type": "AdamW", "scheduler": "constant", "learning_rate": 1e-4},
        "training": {
            "max_train_steps": 1,
            "mixed_precision": "bf16",
            "gradient_checkpointing": True,
            "cache_latents": True,
            "cache_text_encoder_outputs": True,
            "save_every_n_epochs": 0,
            "tensorboard": False,
        },
        "output": {"save_precision": "bf16", "name": f"vram-{family}"},
        "launch": {"sd_scripts": os.environ["KOHYA_SD_SCRIPTS"]},
        "rules": {"allow": ["steps-range", "image-count", "epochs-range"]},
    }
    if family == "sdxl":
        model = {"base": str(sdlab_families.tiny_sdxl(lab)), "family": "sdxl"}
        network = {"dim": 8, "alpha": 4, "train_unet_only": True}
        extra: dict[str, object] = {}
    else:
        files = sdlab_families.tiny_flux(lab)
        model = {"base": str(files["dit"]), "family": "flux"}
        model |= {k: str(files[k]) for k in ("ae", "clip_l", "t5xxl")}
        network = {"module": "networks.lora_flux", "dim": 8, "alpha": 4, "train_unet_only": True}
        extra = {"flux": {"t5xxl_max_token_length": 256}}
    model["tokenizer_cache_dir"] = tokenizers
    data = base_plan(model=model, network=network, **common, **extra)
    data["model"].pop("clip_skip", None)
    data["training"].pop("epochs", None)  # base_plan's: max_train_steps instead
    data["optimizer"].pop("text_encoder_lr", None)
    data["optimizer"].pop("unet_lr", None)
    return write_plan(root, data)


def _kohya_plan(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "kohya_plan", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode not in (0,):
        raise SystemExit(f"kohya-plan {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    data: dict[str, object] = json.loads(out.stdout)
    return data


def run_family(family: str, lab: Path, work: Path) -> dict[str, object]:
    plan = _plan(work / family, family, lab)
    check = _kohya_plan("check", str(plan), "--no-hardware")
    made = _kohya_plan("make", str(plan))
    run_dir = Path(str(made["run_dir"]))
    launch = json.loads((run_dir / "launch.json").read_text())
    argv = launch["argv"]
    script = next(a for a in argv if a.endswith("_network.py"))
    args = argv[argv.index(script) + 1 :]
    python = os.environ.get("KOHYA_PLAN_SD_PYTHON", sys.executable)
    started = time.monotonic()
    out = subprocess.run(
        [python, "-c", WRAPPER, script, *args],
        cwd=launch["cwd"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU_VRAM_CHECK ")]
    if out.returncode != 0 or not lines:
        tail = (out.stdout + out.stderr)[-4000:]
        return {"family": family, "ok": False, "returncode": out.returncode, "tail": tail}
    measured = json.loads(lines[-1].removeprefix("GPU_VRAM_CHECK "))["max_memory_allocated"]
    memory = check["memory"]
    assert isinstance(memory, dict)
    estimate = float(memory["peak_gib"])
    measured_gib = measured / 2**30
    return {
        "family": family,
        "ok": True,
        "estimate_gib": estimate,
        "estimate_phase": memory["peak_phase"],
        "estimate_phases": memory["phases"],
        "measured_gib": round(measured_gib, 3),
        "ratio": round(estimate / measured_gib, 3) if measured_gib else None,
        "wall_s": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--only", choices=("sdxl", "flux"), default=None)
    args = parser.parse_args()
    for name in ("KOHYA_SD_SCRIPTS", "KOHYA_PLAN_SD_PYTHON"):
        if not os.environ.get(name):
            parser.error(f"set {name} (see the module docstring)")
    import sdlab

    lab = sdlab.lab_cache_dir()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-vram-check-") as tmp:
        for family in ("sdxl", "flux"):
            if args.only in (None, family):
                results.append(run_family(family, lab, Path(tmp)))
    for r in results:
        if r["ok"]:
            print(
                f"{r['family']:5} estimate {r['estimate_gib']:6.2f} GiB ({r['estimate_phase']}), "
                f"measured {r['measured_gib']:6.2f} GiB, estimate/measured {r['ratio']}"
            )
        else:
            print(f"{r['family']:5} FAILED (exit {r['returncode']}):\n{r['tail']}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
