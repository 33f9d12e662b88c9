"""`check --deep`: every image decoded the way sd-scripts' ``load_image`` decodes it (Pillow).

A header can be fine while the data behind it is cut short or damaged; sd-scripts then stops
with Pillow's error when it loads that image: while caching latents, or in the middle of an
epoch, hours in. Decoding every image finds these first.

Decoding runs on a thread pool sized to the CPUs this process may use: Pillow releases the
GIL while it decodes and converts, so threads scale (bench/bench_deep_check.py), and no
process is started (only `kohya_plan.run` starts processes).

Verdicts are cached per image by file size and modification time (and the Pillow version),
so `launch` decodes only what changed since the last deep check. The cache lives in the
user's cache folder (``$KOHYA_PLAN_CACHE_DIR``, else platformdirs' user cache:
``~/.cache/kohya-plan`` on Linux), one small JSON file per image folder, never inside the
data set: a data set may be read-only, shared, synced or under version control, and a file
kohya-plan wrote there would be taken for part of it.
"""

# String paths on purpose, as in scan/: thousands of files, stat and open by name.
# ruff: noqa: PTH116, PTH118

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.inputs.facts import DeepStats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

_CACHE_VERSION = 1


def decode_problem(path: str) -> str | None:
    """What sd-scripts' ``load_image`` would raise for this file, in one line; None: it loads.

    ``Image.open``, then ``convert("RGB")`` (which loads every pixel) unless it already is
    RGB, then ``load()``: the same calls, so the same errors (truncated data, broken
    streams, unknown formats, DecompressionBombError). Pillow's warnings are not errors.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                image.convert("RGB")
            else:
                image.load()
    except Exception as exc:  # load_image lets every exception through to the trainer
        text = " ".join(str(exc).split()) or "no message"
        return f"{type(exc).__name__}: {text}"
    return None


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cache_root() -> Path:
    """``$KOHYA_PLAN_CACHE_DIR``, else the user's cache folder for kohya-plan."""
    configured = os.environ.get("KOHYA_PLAN_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("kohya-plan", appauthor=False))


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)


@dataclass
class _FolderCache:
    """One image folder's verdicts: name → (size, mtime_ns, problem)."""

    path: Path
    entries: dict[str, tuple[int, int, str | None]]

    @classmethod
    def load(cls, root: Path, folder: str, pillow: str) -> _FolderCache:
        digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:32]
        path = root / "decoded" / f"{digest}.json"
        entries: dict[str, tuple[int, int, str | None]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(path, entries)
        ok = isinstance(data, dict) and data.get("version") == _CACHE_VERSION
        if not ok or data.get("pillow") != pillow or data.get("folder") != folder:
            return cls(path, entries)
        images = data.get("images")
        for name, value in (images if isinstance(images, dict) else {}).items():
            if (
                isinstance(value, list)
                and len(value) == 3
                and isinstance(value[0], int)
                and isinstance(value[1], int)
                and (value[2] is None or isinstance(value[2], str))
            ):
                entries[name] = (value[0], value[1], value[2])
        return cls(path, entries)

    def save(self, folder: str, pillow: str) -> bool:
        from kohya_plan.rundir import write_json_atomic

        data: dict[str, Any] = {
            "version": _CACHE_VERSION,
            "pillow": pillow,
            "folder": folder,
            "images": {name: list(value) for name, value in sorted(self.entries.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, data)
        except OSError:
            return False  # the cache only saves time: a read-only cache folder is no error
        return True


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def deep_check(
    folders: Iterable[tuple[Path, Sequence[str]]],
    *,
    reuse: bool,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    cache: Path | None = None,
) -> tuple[dict[Path, tuple[tuple[str, str], ...]], DeepStats]:
    """Decode the named images of each folder: ``{folder: ((name, problem), …)}`` and stats.

    ``reuse``: take a cached verdict when the file's size and mtime are unchanged (`launch`);
    without it every image is decoded again (`check --deep`). Verdicts are stored either way.
    ``progress(done, total)`` is called from this thread as images finish.
    """
    started = time.perf_counter()
    workers = workers or default_workers()
    root = cache if cache is not None else cache_root()
    pillow = _pillow_version()
    jobs: list[tuple[Path, str, str, tuple[int, int] | None]] = []
    caches: dict[Path, _FolderCache] = {}
    keys: dict[Path, str] = {}
    verdicts: dict[Path, dict[str, str | None]] = {}
    for folder, names in folders:
        key = os.path.realpath(folder)
        keys[folder] = key
        caches[folder] = _FolderCache.load(root, key, pillow)
        verdicts[folder] = {}
        for name in names:
            path = os.path.join(folder, name)
            jobs.append((folder, name, path, _stamp(path)))
    total = len(jobs)
    todo: list[tuple[Path, str, str, tuple[int, int] | None]] = []
    for folder, name, path, stamp in jobs:
        known = caches[folder].entries.get(name)
        if reuse and known is not None and stamp is not None and known[:2] == stamp:
            verdicts[folder][name] = known[2]
        else:
            todo.append((folder, name, path, stamp))
    done = total - len(todo)
    if progress is not None:
        progress(done, total)
    if todo:
        # Pillow's DecompressionBombWarning and friends are not errors (sd-scripts trains on);
        # filters are process-wide, so they are set once here, around all threads.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                futures = {pool.submit(decode_problem, job[2]): job for job in todo}
                for future in as_completed(futures):
                    folder, name, _path, stamp = futures[future]
                    problem = future.result()
                    verdicts[folder][name] = problem
                    if stamp is not None:
                        caches[folder].entries[name] = (*stamp, problem)
                    done += 1
                    if progress is not None:
                        progress(done, total)
    stored = True
    for folder, folder_cache in caches.items():
        judged = verdicts[folder]
        folder_cache.entries = {n: v for n, v in folder_cache.entries.items() if n in judged}
        stored = folder_cache.save(keys[folder], pillow) and stored
    problems = {
        folder: tuple(sorted((n, p) for n, p in found.items() if p is not None))
        for folder, found in verdicts.items()
    }
    stats = DeepStats(
        images=total,
        decoded=len(todo),
        seconds=time.perf_counter() - started,
        workers=workers,
        pillow=pillow,
        cache=str(root / "decoded") if stored else None,
    )
    return problems, stats
