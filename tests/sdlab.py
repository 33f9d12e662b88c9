"""Helpers for the slow tests that run the real kohya-ss/sd-scripts (markers sdscripts / e2e).

Import it from a test module as ``import sdlab`` (pytest's default "prepend" import mode puts
tests/ on sys.path, as tests/ has no __init__.py). It holds no test functions.

What it needs, and how to get it:

* an sd-scripts Python: ``scripts/setup-sd-scripts`` makes ``.venv-sd/`` in the repo root
  (or set ``KOHYA_SD_PYTHON``, the variable kohya-plan itself reads, to a Python that can
  ``import torch, accelerate, library``; ``KOHYA_PLAN_SD_PYTHON`` is still honoured first);
* the sd-scripts checkout: ``git submodule update --init vendor/sd-scripts``
  (or set ``KOHYA_SD_SCRIPTS`` to an sd-scripts work tree).

Everything built here (CLIP tokenizer, tiny random SD1.5 model) goes to a cache directory,
``$KOHYA_PLAN_TEST_CACHE`` or ``~/.cache/kohya-plan-tests``, and is built only once.
Building the tokenizer downloads the open_clip_torch wheel from PyPI once (1.5 MB).

Command line (builds the cache; prints the paths)::

    .venv/bin/python tests/sdlab.py
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# The recipes `kohya-plan selftest` uses too (run in the sd-scripts Python).
RECIPES = REPO_ROOT / "kohya_plan" / "setup" / "scripts"

TOKENIZER_FOLDER = "openai_clip-vit-large-patch14"
OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
DONE_MARKER = ".kohya-plan-complete"

SETUP_HINT = (
    "run scripts/setup-sd-scripts (creates .venv-sd with torch + sd-scripts' requirements), "
    "or set KOHYA_SD_PYTHON (the variable kohya-plan reads) to such a Python"
)
# The interpreter variables, in the order they are honoured: the suite's own override, then
# the one kohya-plan reads (inputs/trainer.py), so that a shell set up for kohya-plan also
# runs the real tests.
SD_PYTHON_VARS = ("KOHYA_PLAN_SD_PYTHON", "KOHYA_SD_PYTHON")
SUBMODULE_HINT = "run: git submodule update --init vendor/sd-scripts (or set KOHYA_SD_SCRIPTS)"

# `Total dataset length (steps) / データセットの長さ（ステップ数）: 8` (train_util.debug_dataset)
_LENGTH_RE = re.compile(r"Total dataset length \(steps\) /[^:\n]*:\s*(\d+)")
# the same line hard-wrapped by rich (narrow terminal): anchor on the Japanese half instead
_LENGTH_WRAPPED_RE = re.compile(r"（ステップ数）\s*:\s*(\d+)")


# --------------------------------------------------------------------------- locating things


def sd_scripts_dir() -> Path | None:
    """The sd-scripts work tree: $KOHYA_SD_SCRIPTS if set, else vendor/sd-scripts.

    None when the chosen folder has no train_network.py (submodule not checked out)."""
    env = os.environ.get("KOHYA_SD_SCRIPTS")
    path = Path(env).expanduser() if env else REPO_ROOT / "vendor" / "sd-scripts"
    return path.resolve() if (path / "train_network.py").is_file() else None


def _default_sd_venv() -> Path:
    env = os.environ.get("KOHYA_PLAN_SD_VENV")
    return Path(env).expanduser() if env else REPO_ROOT / ".venv-sd"


@functools.cache
def _probe(python: str, cwd: str | None) -> str | None:
    """None if `python` can import torch, accelerate and library; else why not (cached)."""
    try:
        res = subprocess.run(
            [python, "-c", "import torch, accelerate, library"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python}: {exc}"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"{python} cannot import torch, accelerate, library: {last}"
    return None


def sd_python() -> Path | None:
    """The Python that runs sd-scripts.

    $KOHYA_PLAN_SD_PYTHON or $KOHYA_SD_PYTHON if set (trusted as is, if it exists); else the
    repo's .venv-sd (or $KOHYA_PLAN_SD_VENV, as scripts/setup-sd-scripts makes it) python if
    it exists and can import torch, accelerate, library."""
    env = _sd_python_env()
    if env:
        path = Path(env).expanduser()
        return path if path.exists() else None
    path = _default_sd_venv() / "bin" / "python"
    if not path.exists():
        return None
    sd = sd_scripts_dir()
    if _probe(str(path), str(sd) if sd else None) is not None:
        return None
    return path


def _sd_python_env() -> str | None:
    return next((v for n in SD_PYTHON_VARS if (v := os.environ.get(n))), None)


def skip_reason() -> str | None:
    """Why the real sd-scripts tests cannot run here (None when they can)."""
    problems = []
    if sd_scripts_dir() is None:
        where = os.environ.get("KOHYA_SD_SCRIPTS") or "vendor/sd-scripts"
        problems.append(
            f"no sd-scripts checkout ({where}/train_network.py missing): {SUBMODULE_HINT}"
        )
    if sd_python() is None:
        name = next((n for n in SD_PYTHON_VARS if os.environ.get(n)), None)
        if name:
            problems.append(f"{name}={os.environ[name]} does not exist")
        else:
            venv_python = _default_sd_venv() / "bin" / "python"
            if not venv_python.exists():
                problems.append(f"no sd-scripts venv ({venv_python} missing): {SETUP_HINT}")
            else:
                sd = sd_scripts_dir()
                why = _probe(str(venv_python), str(sd) if sd else None)
                problems.append(f"sd-scripts venv is broken ({why}): {SETUP_HINT}")
    return "; ".join(problems) if problems else None


def require_sd_python() -> Path:
    """sd-scripts' Python for a test, or skip the test saying what is missing."""
    import pytest

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    python = sd_python()
    assert python is not None
    return python


def _require() -> tuple[Path, Path]:
    python, sd = sd_python(), sd_scripts_dir()
    if python is None or sd is None:
        raise RuntimeError(skip_reason() or "sd-scripts is not available")
    return python, sd


def lab_cache_dir() -> Path:
    """$KOHYA_PLAN_TEST_CACHE or ~/.cache/kohya-plan-tests (created)."""
    env = os.environ.get("KOHYA_PLAN_TEST_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "kohya-plan-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- building the lab


@contextlib.contextmanager
def _locked(lab: Path, name: str) -> Iterator[None]:
    """An exclusive lock so that two test processes don't build the same thing at once."""
    lab.mkdir(parents=True, exist_ok=True)
    with open(lab / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_builder(cmd: list[str | Path], what: str, timeout: float, cwd: Path | None = None) -> None:
    res = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if res.returncode != 0:
        tail = (res.stdout + res.stderr)[-4000:]
        raise RuntimeError(f"building {what} failed (exit {res.returncode}):\n{tail}")


def _bpe_file(lab: Path, python: Path) -> Path:
    """bpe_simple_vocab_16e6.txt.gz, taken from the open_clip_torch wheel (downloaded once)."""
    dl = lab / "downloads"
    bpe = dl / "bpe_simple_vocab_16e6.txt.gz"
    if bpe.is_file():
        return bpe
    dl.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dl.glob("open_clip_torch-*.whl"))
    if not wheels:
        _run_builder(
            [python, "-m", "pip", "download", OPEN_CLIP_WHEEL, "--no-deps", "-d", dl],
            "open_clip_torch download",
            timeout=600,
        )
        wheels = sorted(dl.glob("open_clip_torch-*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {OPEN_CLIP_WHEEL} left no wheel in {dl}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        data = zf.read(BPE_MEMBER)
    tmp = bpe.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.replace(bpe)
    return bpe


def tokenizer_cache(lab: Path) -> Path:
    """The value for --tokenizer_cache_dir: `<lab>/tokenizer_cache`, holding an offline replica
    of openai/clip-vit-large-patch14 in `<lab>/tokenizer_cache/openai_clip-vit-large-patch14`.

    Built once (a few seconds) with the sd-scripts Python; idempotent."""
    cache = lab / "tokenizer_cache"
    folder = cache / TOKENIZER_FOLDER
    if (folder / DONE_MARKER).is_file():
        return cache
    python, _ = _require()
    with _locked(lab, "tokenizer"):
        if (folder / DONE_MARKER).is_file():
            return cache
        bpe = _bpe_file(lab, python)
        partial = lab / "tokenizer_cache.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _run_builder(
            [python, RECIPES / "make_tokenizer.py", bpe, partial],
            "CLIP tokenizer",
            timeout=600,
        )
        cache.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        (partial / TOKENIZER_FOLDER).replace(folder)
        shutil.rmtree(partial, ignore_errors=True)
        (folder / DONE_MARKER).write_text("ok\n")
    return cache


def tiny_sd15(lab: Path) -> Path:
    """`<lab>/models/tiny-sd15`: a random SD1.5-shaped Diffusers folder that sd-scripts loads.

    Full-size U-Net (sd-scripts hard-codes its shape), 2-layer text encoder, tiny VAE, non-zero
    final LayerNorm bias. Built once: ~35 s, ~7.6 GiB RAM, ~3.5 GB on disk; idempotent (a
    marker file is written last)."""
    model = lab / "models" / "tiny-sd15"
    if (model / DONE_MARKER).is_file():
        return model
    tok_folder = tokenizer_cache(lab) / TOKENIZER_FOLDER
    python, _ = _require()
    with _locked(lab, "tiny-sd15"):
        if (model / DONE_MARKER).is_file():
            return model
        partial = model.with_name("tiny-sd15.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(model, ignore_errors=True)
        model.parent.mkdir(parents=True, exist_ok=True)
        _run_builder(
            [python, RECIPES / "make_tiny_sd15.py", partial, tok_folder],
            "tiny SD1.5 model",
            timeout=900,
        )
        partial.replace(model)
        (model / DONE_MARKER).write_text("ok\n")
    return model


# --------------------------------------------------------------------------- small datasets


def write_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> None:
    """A solid-colour 8-bit RGB PNG (no Pillow needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    raw = row * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def make_dataset(parent: Path, repeats: int = 2, name: str = "testchar") -> Path:
    """`<parent>/<repeats>_<name>/img0..3.png` + `.txt` captions: two 128x128 and two 192x80
    images (two buckets with resolution 128, buckets 64..256). Returns the image folder."""
    folder = parent / f"{repeats}_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        ((128, 128), (200, 40, 40), f"{name}, red hair, smiling"),
        ((128, 128), (40, 200, 40), f"{name}, green shirt, standing"),
        ((192, 80), (40, 40, 200), f"{name}, blue sky, landscape"),
        ((192, 80), (200, 200, 40), f"{name}, yellow field, wide shot"),
    ]
    for i, ((w, h), colour, caption) in enumerate(specs):
        write_png(folder / f"img{i}.png", w, h, colour)
        (folder / f"img{i}.txt").write_text(caption + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- sd-scripts runs


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        return


def _find_length(text: str) -> int | None:
    m = _LENGTH_RE.search(text) or _LENGTH_WRAPPED_RE.search(text)
    return int(m.group(1)) if m else None


def sd_dataset_length(
    dataset_toml: Path,
    extra_args: list[str],
    timeout: float = 300,
    script: str = "train_network.py",
) -> int:
    """The number of steps per epoch sd-scripts computes for a dataset config.

    Runs `<script> --debug_dataset --dataset_config <dataset_toml> ...` (cwd = the sd-scripts
    dir; `extra_args` come last, so they override the defaults given here), waits for
    `Total dataset length (steps) / ...: N`, then kills the process group (on Linux
    --debug_dataset loops forever) and returns N. Raises RuntimeError if the process ends
    without printing it, TimeoutError after `timeout` seconds."""
    python, sd = _require()
    tok_cache = tokenizer_cache(lab_cache_dir())
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="400")
    with tempfile.TemporaryDirectory(prefix="kohya-plan-debug-dataset-") as out_dir:
        cmd = [
            str(python),
            str(sd / script),
            "--debug_dataset",
            "--dataset_config",
            str(Path(dataset_toml).resolve()),
            "--tokenizer_cache_dir",
            str(tok_cache),
            "--pretrained_model_name_or_path",
            "unused-by-debug-dataset",
            "--network_module",
            "networks.lora",
            "--output_dir",
            out_dir,
            *extra_args,
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=sd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = buf[-4000:].decode("utf-8", "replace")
                    raise TimeoutError(
                        f"no dataset length after {timeout:.0f} s from {cmd}:\n{tail}"
                    )
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not ready:
                    continue
                data = os.read(fd, 65536)
                if not data:  # EOF: the process ended without printing the length
                    proc.wait(timeout=30)
                    tail = buf[-4000:].decode("utf-8", "replace")
                    raise RuntimeError(
                        f"sd-scripts exited ({proc.returncode}) without a dataset length:\n{tail}"
                    )
                buf += data
                n = _find_length(buf.decode("utf-8", "replace"))
                if n is not None:
                    return n
        finally:
            _kill_group(proc)
            proc.stdout.close()


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        sys.exit(reason)
    lab = lab_cache_dir()
    t0 = time.monotonic()
    print("tokenizer cache:", tokenizer_cache(lab), f"({time.monotonic() - t0:.1f} s)")
    t0 = time.monotonic()
    print("tiny SD1.5 model:", tiny_sd15(lab), f"({time.monotonic() - t0:.1f} s)")
