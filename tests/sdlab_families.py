"""The SDXL and FLUX.1 test lab: offline tokenizers and tiny random models sd-scripts loads.

Import it from a test module as ``import sdlab_families`` (like ``sdlab``, which it builds on:
the same cache directory ``sdlab.lab_cache_dir()``, the same sd-scripts Python, the same
build-once-with-a-marker-and-a-lock). It holds no test functions.

What each function returns (all built once into the cache, then reused):

* ``family_tokenizers(lab)``: the value for ``--tokenizer_cache_dir``, holding the three
  folders sd-scripts looks for: ``openai_clip-vit-large-patch14`` (sdlab's CLIP-L),
  ``laion_CLIP-ViT-bigG-14-laion2B-39B-b160k`` (SDXL's second tokenizer: CLIP-L with pad "!")
  and ``google_t5-v1_1-xxl`` (Flux's T5, from a file inside the stable-diffusion-cpp-python
  sdist on PyPI, downloaded once: 20 MB).
* ``tiny_sdxl(lab)``: a Diffusers folder: full-size U-Net (fp16 on disk, with the fp16-variant
  link), 11-layer CLIP-L, 2-layer bigG, tiny VAE. ~1 min, ~11 GiB RAM, ~5.4 GB on disk.
* ``tiny_flux(lab)``: ``{"dit", "clip_l", "t5xxl", "ae"}`` -> files: a DiT with 1 double and
  1 single block, full CLIP-L and AE (together ~15 s, ~3 GiB RAM, 1.5 GB), the full-size
  T5-XXL in bf16 (~1 min, ~2 GiB RAM: streamed; 9.5 GB) or, with ``t5_dtype="fp8"``, in fp8
  e4m3fn (4.8 GB). ``tiny_flux_dit(lab)`` builds only the DiT, CLIP-L and AE.

Why these shapes (what sd-scripts hard-codes): see tests/sdlab_make_tiny_sdxl.py and
tests/sdlab_make_tiny_flux.py.

Command line (builds the cache; prints the paths and times)::

    .venv/bin/python tests/sdlab_families.py [tokenizers] [sdxl] [flux] [flux-fp8]
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

import sdlab

TESTS_DIR = Path(__file__).resolve().parent
DONE_MARKER = sdlab.DONE_MARKER

CLIP_L_FOLDER = sdlab.TOKENIZER_FOLDER
BIGG_FOLDER = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
T5_FOLDER = "google_t5-v1_1-xxl"
TOKENIZER_FOLDERS = (CLIP_L_FOLDER, BIGG_FOLDER, T5_FOLDER)

# the T5 tokenizer.json is embedded in stable-diffusion.cpp, which this sdist vendors
T5_SDIST = "stable-diffusion-cpp-python==0.4.7"
T5_SDIST_FILE = "stable_diffusion_cpp_python-0.4.7.tar.gz"
T5_SDIST_SHA256 = "998d1957260dd5ae4e18a8acc0c14b0a8757aaa9f96515197b6d5bbf46df9282"

FLUX_DIT_FILE = "flux-dev-1d1s.safetensors"
FLUX_T5_DTYPES = ("bf16", "fp8")

# rough free disk space each build needs (GB), checked before starting
_DISK_GB = {"tiny-sdxl": 6.0, "tiny-flux": 2.0, "t5xxl_bf16": 10.0, "t5xxl_fp8": 5.0}


def _check_disk(where: Path, what: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free / 1e9
    need = _DISK_GB[what]
    if free < need:
        msg = f"building {what} needs ~{need:.0f} GB free in {where}, only {free:.1f} GB left"
        raise RuntimeError(msg)


# --------------------------------------------------------------------------- tokenizers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _t5_sdist(lab: Path, python: Path) -> Path:
    """The stable-diffusion-cpp-python sdist (downloaded once with pip, hash checked)."""
    dl = lab / "downloads"
    sdist = dl / T5_SDIST_FILE
    if not sdist.is_file():
        dl.mkdir(parents=True, exist_ok=True)
        # --no-binary: the sdist, which holds the stable-diffusion.cpp sources
        cmd = [python, "-m", "pip", "download", T5_SDIST, "--no-deps", "--no-binary", ":all:"]
        sdlab._run_builder(
            [*cmd, "-d", dl],
            f"{T5_SDIST} download",
            timeout=900,
        )
        if not sdist.is_file():
            msg = f"pip download {T5_SDIST} left no {T5_SDIST_FILE} in {dl}"
            raise RuntimeError(msg)
    digest = _sha256(sdist)
    if digest != T5_SDIST_SHA256:
        msg = f"{sdist}: sha256 {digest}, expected {T5_SDIST_SHA256}; delete it to download again"
        raise RuntimeError(msg)
    return sdist


def _tokenizer_folder(lab: Path, cache: Path, folder: str, builder: str, *args: Path) -> None:
    """Build cache/folder with `builder` (a script writing <root>/<folder>) unless marked done."""
    target = cache / folder
    if (target / DONE_MARKER).is_file():
        return
    python, _ = sdlab._require()
    with sdlab._locked(lab, f"tokenizer-{folder}"):
        if (target / DONE_MARKER).is_file():
            return
        partial = lab / f"tokenizer-{folder}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [python, TESTS_DIR / builder, *args, partial]
        sdlab._run_builder(cmd, f"tokenizer {folder}", timeout=600)
        shutil.rmtree(target, ignore_errors=True)
        (partial / folder).replace(target)
        shutil.rmtree(partial, ignore_errors=True)
        (target / DONE_MARKER).write_text("ok\n")


def family_tokenizers(lab: Path) -> Path:
    """The value for --tokenizer_cache_dir with CLIP-L, CLIP-bigG and T5-XXL (offline).

    `<lab>/tokenizer_cache` (sdlab.tokenizer_cache, plus two folders); idempotent."""
    cache = sdlab.tokenizer_cache(lab)
    _tokenizer_folder(
        lab, cache, BIGG_FOLDER, "sdlab_make_bigg_tokenizer.py", cache / CLIP_L_FOLDER
    )
    if not (cache / T5_FOLDER / DONE_MARKER).is_file():
        python, _ = sdlab._require()
        with sdlab._locked(lab, "t5-sdist"):
            sdist = _t5_sdist(lab, python)
        _tokenizer_folder(lab, cache, T5_FOLDER, "sdlab_make_t5_tokenizer.py", sdist)
    return cache


# --------------------------------------------------------------------------- models


def tiny_sdxl(lab: Path) -> Path:
    """`<lab>/models/tiny-sdxl`: a random SDXL-shaped Diffusers folder that sd-scripts loads.

    Full-size U-Net (fp16, plus unet/diffusion_pytorch_model.fp16.safetensors linking to it for
    --mixed_precision fp16), 11-layer CLIP-L, 2-layer bigG, tiny VAE. Built once: ~1 min,
    ~11 GiB RAM, ~5.4 GB on disk; idempotent (a marker file is written last)."""
    model = lab / "models" / "tiny-sdxl"
    if (model / DONE_MARKER).is_file():
        return model
    tokenizers = family_tokenizers(lab)
    python, _ = sdlab._require()
    with sdlab._locked(lab, "tiny-sdxl"):
        if (model / DONE_MARKER).is_file():
            return model
        partial = model.with_name("tiny-sdxl.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(model, ignore_errors=True)
        _check_disk(model.parent, "tiny-sdxl")
        sdlab._run_builder(
            [python, TESTS_DIR / "sdlab_make_tiny_sdxl.py", partial, tokenizers],
            "tiny SDXL model",
            timeout=1800,
        )
        partial.replace(model)
        (model / DONE_MARKER).write_text("ok\n")
    return model


def _flux_dir(lab: Path) -> Path:
    return lab / "models" / "tiny-flux"


def _build_flux(lab: Path, marker: str, parts: str, what: str, *extra: str) -> None:
    """Run the Flux builder for `parts` unless `marker` exists (the builder renames each file
    into place only once complete, so an interrupted build leaves no half file under its name)."""
    folder = _flux_dir(lab)
    if (folder / marker).is_file():
        return
    python, sd = sdlab._require()
    with sdlab._locked(lab, "tiny-flux"):
        if (folder / marker).is_file():
            return
        _check_disk(folder, what)
        for stale in folder.glob("*.partial"):
            stale.unlink()
        builder = [python, TESTS_DIR / "sdlab_make_tiny_flux.py", folder, "--sd-scripts", sd]
        sdlab._run_builder(
            [*builder, "--parts", parts, *extra],
            f"tiny Flux {what}",
            timeout=1800,
            cwd=sd,
        )
        (folder / marker).write_text("ok\n")


def tiny_flux_dit(lab: Path) -> dict[str, Path]:
    """The tiny Flux model without T5: {"dit", "clip_l", "ae"} -> files in `<lab>/models/tiny-flux`.

    DiT with 1 double + 1 single block (545.5 M params, bf16), full CLIP-L and AE (bf16).
    Built once: ~15 s, ~3 GiB RAM, 1.5 GB on disk."""
    _build_flux(lab, DONE_MARKER, "dit,clip_l,ae", "tiny-flux")
    folder = _flux_dir(lab)
    return {
        "dit": folder / FLUX_DIT_FILE,
        "clip_l": folder / "clip_l.safetensors",
        "ae": folder / "ae.safetensors",
    }


def tiny_flux(lab: Path, t5_dtype: str = "bf16") -> dict[str, Path]:
    """The tiny Flux model: {"dit", "clip_l", "t5xxl", "ae"} -> files in `<lab>/models/tiny-flux`.

    `tiny_flux_dit` plus the full-size T5-XXL in `t5_dtype`: "bf16" (9.5 GB, ~1 min) or "fp8"
    (e4m3fn, 4.8 GB; for --fp8_base). Written tensor by tensor: ~2 GiB RAM. Idempotent."""
    if t5_dtype not in FLUX_T5_DTYPES:
        msg = f"t5_dtype must be one of {FLUX_T5_DTYPES}, got {t5_dtype!r}"
        raise ValueError(msg)
    files = tiny_flux_dit(lab)
    name = f"t5xxl_{t5_dtype}"
    _build_flux(lab, f"{DONE_MARKER}-{name}", "t5xxl", name, "--t5-dtype", t5_dtype)
    return {**files, "t5xxl": _flux_dir(lab) / f"{name}.safetensors"}


if __name__ == "__main__":
    reason = sdlab.skip_reason()
    if reason:
        sys.exit(reason)
    what = sys.argv[1:] or ["tokenizers", "sdxl", "flux"]
    known = {"tokenizers", "sdxl", "flux", "flux-fp8"}
    if set(what) - known:
        sys.exit(f"unknown: {sorted(set(what) - known)}; choose from {sorted(known)}")
    lab = sdlab.lab_cache_dir()
    builders = {
        "tokenizers": lambda: family_tokenizers(lab),
        "sdxl": lambda: tiny_sdxl(lab),
        "flux": lambda: tiny_flux(lab),
        "flux-fp8": lambda: tiny_flux(lab, "fp8"),
    }
    for name in what:
        t0 = time.monotonic()
        result = builders[name]()
        print(f"{name}: {result} ({time.monotonic() - t0:.1f} s)")
