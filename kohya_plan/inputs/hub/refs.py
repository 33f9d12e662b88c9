"""Hugging Face Hub references in ``model.base`` and the other model fields (pure).

``model.base`` syntax for the Hub (:func:`parse_model_ref`)::

    [hf://]ORG/NAME                       a Diffusers repo, default branch
    [hf://]ORG/NAME@REVISION              … at a branch, tag or commit hash
    [hf://]ORG/NAME/PATH/FILE.safetensors a single-file checkpoint in the repo
    [hf://]ORG/NAME@REVISION/PATH/FILE.safetensors

REVISION is one path segment (``main``, ``v1.0``, a 40-hex commit) or ``refs/pr/N`` /
``refs/convert/NAME``; when nothing after the ``@`` ends in a checkpoint suffix
(``.safetensors``, ``.ckpt``, ``.pt``, ``.pth``, ``.bin``) the whole rest is the revision, so
branches with ``/`` work when no file is named. ``hf://`` makes the meaning explicit where a
relative local path could read the same (``models/sd/x.safetensors``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kohya_plan.inputs.checkpoint import CHECKPOINT_SUFFIXES

HUB_PREFIX = "hf://"
_NAME = r"[\w](?:[\w.-]{0,94}[\w])?"  # huggingface_hub's repo-id rule: 1-96 chars, \w at both ends
_REPO = re.compile(rf"^({_NAME})/({_NAME})$")
_REVISION = re.compile(r"^(refs/(?:pr|convert)/[\w.-]+|[\w.-]+)$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


# --- model references -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubRef:
    """A model on the Hugging Face Hub: a repo, optionally a revision and a file inside it."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None

    def __str__(self) -> str:
        text = self.repo_id
        if self.revision:
            text += f"@{self.revision}"
        if self.filename:
            text += f"/{self.filename}"
        return text


def _is_checkpoint_name(text: str) -> bool:
    return text.lower().endswith(CHECKPOINT_SUFFIXES)


def _check_path(path: str, base: str) -> str:
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        msg = f"{base!r}: the file path inside the repo ({path!r}) has an empty or '..' part"
        raise ValueError(msg)
    if not _is_checkpoint_name(path):
        msg = (
            f"{base!r}: a path inside a Hub repo must name a checkpoint file "
            f"({', '.join(CHECKPOINT_SUFFIXES)}); for a Diffusers repo give just ORG/NAME"
        )
        raise ValueError(msg)
    return path


def parse_model_ref(base: str) -> HubRef:
    """Parse ``model.base`` as a Hub reference (syntax in the module docstring).

    Raises ValueError, with the reason, for anything that is not one — including local-looking
    paths such as ``./x``, ``C:/x``, ``~/x`` and ``dir/model.safetensors`` (a repo name never
    ends in a checkpoint suffix).
    """
    text = base.strip()
    if text.startswith(HUB_PREFIX):
        text = text[len(HUB_PREFIX) :]
    head, at, rest = text.partition("@")
    pieces = head.split("/")
    repo_id = "/".join(pieces[:2])
    match = _REPO.match(repo_id)
    if match is None or "--" in repo_id or ".." in repo_id or (at and len(pieces) > 2):
        msg = f"{base!r} is not a Hugging Face repo id (expected ORG/NAME)"
        raise ValueError(msg)
    if _is_checkpoint_name(match.group(2)):
        msg = f"{base!r} looks like a local file path, not a Hugging Face repo id"
        raise ValueError(msg)
    revision: str | None = None
    filename: str | None = None
    if at:
        if not rest:
            msg = f"{base!r}: nothing after '@' (give a branch, tag or commit hash)"
            raise ValueError(msg)
        revision, filename = _split_revision(rest, base)
    elif len(pieces) > 2:
        filename = _check_path("/".join(pieces[2:]), base)
    return HubRef(repo_id, revision, filename)


def _split_revision(rest: str, base: str) -> tuple[str, str | None]:
    parts = rest.split("/")
    if not _is_checkpoint_name(rest):
        revision, filename = rest, None
    elif parts[0] == "refs" and len(parts) > 3:
        revision, filename = "/".join(parts[:3]), "/".join(parts[3:])
    elif len(parts) > 1:
        revision, filename = parts[0], "/".join(parts[1:])
    else:
        msg = f"{base!r}: a revision cannot end in a file suffix; put the file after '/'"
        raise ValueError(msg)
    if filename is None:  # a branch may contain "/" when no file follows
        valid = all(re.fullmatch(r"[\w.-]+", part) for part in parts)
    else:
        valid = _REVISION.match(revision) is not None
        _check_path(filename, base)
    if not valid:
        msg = f"{base!r}: {revision!r} is not a valid revision"
        raise ValueError(msg)
    return revision, filename


def is_hub_ref(base: str) -> bool:
    """Whether ``model.base`` parses as a Hub reference (it may still be a local path first)."""
    try:
        parse_model_ref(base)
    except ValueError:
        return False
    return True
