"""Paths of a plan that no file-system call can take: refused before anything reads them.

A plan may name a path that cannot even be looked up: a name longer than the file system
allows (ENAMETOOLONG), a symbolic-link loop (ELOOP). Every later step (the folder scan, the
model's header, `make`) would fail on it with an OS error, so these are found first, all at
once, as plan errors naming the key. NUL bytes and control characters are refused earlier,
by the plan's schema (`kohya_plan.plan.common.PlainText`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kohya_plan import rules
from kohya_plan.errors import os_error_text
from kohya_plan.inputs.facts import WriteTarget

if TYPE_CHECKING:
    from kohya_plan.findings import Finding
    from kohya_plan.plan import Plan

_UNUSABLE = {errno.ENAMETOOLONG, errno.ELOOP}


def plan_paths(plan: Plan, plan_dir: Path) -> list[tuple[str, Path]]:
    """Every file-system path a plan names, with its plan key (relative ones resolved)."""
    ds, model, out, launch = plan.dataset, plan.model, plan.output, plan.launch
    found: list[tuple[str, Path | str | None]] = [
        ("model.base", model.base),
        ("model.vae", model.vae),
        ("model.ae", model.ae),
        ("model.clip_l", model.clip_l),
        ("model.t5xxl", model.t5xxl),
        ("model.tokenizer_cache_dir", model.tokenizer_cache_dir),
        ("dataset.train_dir", ds.train_dir),
        ("dataset.reg_dir", ds.reg_dir),
        *((f"dataset.subsets[{i}].image_dir", s.image_dir) for i, s in enumerate(ds.subsets)),
        ("output.dir", out.dir),
        ("output.runs_dir", plan.runs_dir(plan_dir)),
        ("launch.sd_scripts", launch.sd_scripts),
        ("launch.python", launch.python),
    ]
    paths: list[tuple[str, Path]] = []
    for field, value in found:
        if value is None:
            continue
        if (
            field.startswith("model.")
            and field != "model.tokenizer_cache_dir"
            and _hub_ref(str(value), plan_dir)
        ):
            continue
        path = Path(value).expanduser()
        paths.append((field, path if path.is_absolute() else plan_dir / path))
    return paths


def undecodable(path: Path | str) -> bool:
    """Whether a path holds bytes that are not UTF-8 (Python shows them as lone surrogates):
    TOML is UTF-8, so sd-scripts' dataset and config files cannot name such a folder."""
    return any(0xDC80 <= ord(char) <= 0xDCFF for char in str(path))


def not_utf8_finding(field: str, path: Path | str) -> Finding:
    """The error for a path :func:`undecodable` refuses."""
    shown = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return rules.NAME_NOT_UTF8.finding(
        field,
        f"{shown} has a name that is not valid UTF-8, and the TOML files sd-scripts reads can "
        "only hold UTF-8",
        "rename the folder (e.g. with `convmv -f <its encoding> -t utf8`)",
    )


def name_max(folder: Path) -> int:
    """The longest file name (in bytes; UTF-16 units on Windows) allowed in ``folder``."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # Windows, or the call is unsupported
        return 255


def name_length(name: str) -> int:
    """A name's length as the file system counts it."""
    if os.name == "nt":
        return len(name.encode("utf-16-le")) // 2
    return len(os.fsencode(name))


def existing_anchor(path: Path) -> tuple[Path, list[str]]:
    """The nearest folder of ``path`` that exists, and the names below it that do not yet."""
    missing: list[str] = []
    anchor = path
    while True:
        try:
            anchor.stat()
            return anchor, missing[::-1]
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or anchor == anchor.parent:
                raise
        missing.append(anchor.name)
        anchor = anchor.parent


def _hub_ref(value: str, plan_dir: Path) -> bool:
    from kohya_plan.inputs.hub import is_hub_ref

    if not is_hub_ref(value):
        return False
    try:
        return not (plan_dir / value).exists()
    except (OSError, ValueError):
        return True


def unusable_paths(plan: Plan, plan_dir: Path) -> list[Finding]:
    """A finding for each plan path the OS refuses to look up (too long, a link loop).

    A name too long for the file system is found whether or not its folder exists yet: the
    names below the nearest existing folder are measured against that folder's limit.
    """
    if undecodable(plan_dir):  # every path beside the plan would say the same
        return [not_utf8_finding("plan", plan_dir)]
    findings: list[Finding] = []
    for field, path in plan_paths(plan, plan_dir):
        if undecodable(path):
            findings.append(not_utf8_finding(field, path))
            continue
        try:
            anchor, missing = existing_anchor(path)
        except OSError as exc:
            if exc.errno not in _UNUSABLE:
                continue  # no permission and the like: the checks say it better
            why, fix = os_error_text(exc)
            findings.append(
                rules.PATH_UNUSABLE.finding(field, f"{path}: {why}", f"{fix} in {field}")
            )
            continue
        except ValueError:  # a NUL byte the schema did not see (not a plan string)
            findings.append(
                rules.PATH_UNUSABLE.finding(field, f"{path!r} contains a NUL byte", "remove it")
            )
            continue
        limit = name_max(anchor)
        long = [name for name in missing if name_length(name) > limit]
        if long:
            findings.append(
                rules.PATH_UNUSABLE.finding(
                    field,
                    f"{path}: the name {long[0][:40]}… is {name_length(long[0])} bytes, longer "
                    f"than the {limit} its file system allows",
                    f"use a shorter name in {field}",
                )
            )
    return findings


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # Windows
        return False


def write_target(field: str, path: Path) -> WriteTarget:
    """Whether ``path`` can be created (or written, if it exists) — asked without writing.

    ``os.access`` answers for this user, including a read-only mount (EROFS) even for root;
    the folders ``path`` still needs are judged by their nearest existing folder.
    """
    try:
        anchor, _missing = existing_anchor(path)
    except OSError as exc:
        why, _fix = os_error_text(exc)
        return WriteTarget(field, path, f"{path} cannot be looked up: {why}")
    limit = name_max(anchor)
    if not anchor.is_dir():
        return WriteTarget(field, path, f"{anchor} is a file, not a folder", limit)
    if not os.access(anchor, os.W_OK | os.X_OK):
        where = "" if anchor == path else f" (the folder {path} would be made in it)"
        if _read_only_fs(anchor):
            problem = f"{anchor} is on a read-only file system{where}"
        else:
            problem = f"{anchor} is not writable for you{where}"
        return WriteTarget(field, path, problem, limit)
    return WriteTarget(field, path, None, limit)
