"""Where huggingface_hub keeps things: the environment and the cache layout (no network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kohya_plan.inputs.hub.refs import COMMIT, HubRef

_TRUE = {"1", "ON", "YES", "TRUE"}


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        return None
    return Path(os.path.expandvars(value)).expanduser()


def hf_home() -> Path:
    """``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    home = _env_path("HF_HOME")
    if home is not None:
        return home
    xdg = _env_path("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return xdg / "huggingface"


def hub_cache_dir() -> Path:
    """huggingface_hub's model cache: ``$HF_HUB_CACHE`` (legacy ``$HUGGINGFACE_HUB_CACHE``),
    else ``<hf_home>/hub``. Read from the environment on every call, as the CLI may set it late.
    """
    return _env_path("HF_HUB_CACHE") or _env_path("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub"


def default_tokenizer_cache() -> Path:
    """Where tokenizers go when the plan has no ``model.tokenizer_cache_dir``."""
    return hf_home() / "kohya-plan" / "tokenizers"


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to 1/ON/YES/TRUE."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in _TRUE:
            return True
    constants = sys.modules.get("huggingface_hub.constants")  # fixed when it was imported
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def cached_model(ref: HubRef, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot folder (or file) for ``ref``, without any network; None if absent.

    Reads the cache layout directly (``models--ORG--NAME/refs/<rev>`` holds the commit,
    ``snapshots/<commit>/`` the files), so ``check`` can inspect a cached model cheaply. A
    snapshot folder may be partial; :func:`resolve_model` checks what sd-scripts needs.
    """
    repo = _repo_folder(cache_dir or hub_cache_dir(), ref.repo_id)
    revision = ref.revision or "main"
    if COMMIT.match(revision):
        commit = revision
    else:
        try:
            commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
    if not COMMIT.match(commit):
        return None
    snapshot = repo / "snapshots" / commit
    path = snapshot / ref.filename if ref.filename else snapshot
    return path if path.exists() else None


# --- errors ---------------------------------------------------------------------------------
