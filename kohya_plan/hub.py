"""Hugging Face Hub models and CLIP tokenizers, fetched into the standard cache before sd-scripts.

sd-scripts would otherwise download them itself, mid-run and without a clear error: the base
model when ``--pretrained_model_name_or_path`` is a repo id, and always the CLIP tokenizer
(``openai/clip-vit-large-patch14``; SDXL also ``laion/CLIP-ViT-bigG-14-laion2B-39B-b160k``)
unless ``--tokenizer_cache_dir D`` holds ``D/<repo id with "/" → "_">``
(``library/strategy_base.py`` ``TokenizeStrategy._load_tokenizer``).

Here both are resolved with huggingface_hub into its standard cache (``HF_HOME``,
``HF_HUB_CACHE``), honouring ``HF_HUB_OFFLINE`` and the token from ``HF_TOKEN`` or
``hf auth login`` (older releases: ``huggingface-cli login``). No token is ever passed,
printed or written by this module; huggingface_hub finds it on its own. sd-scripts then gets
local paths only. Every failure becomes a :class:`~kohya_plan.errors.LaunchError` (exit 2)
that says what is missing and how to get it.

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

huggingface_hub is imported inside functions only: the CLI starts without it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.checkpoint import (
    CheckpointError,
    detect_family,
    diffusers_family,
    family_from_header,
    family_problem,
    read_json_object,
)
from kohya_plan.errors import LaunchError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf://"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
"""A path inside a repo that ends in one of these names a single-file checkpoint."""

_TRUE = {"1", "ON", "YES", "TRUE"}
_NAME = r"[\w](?:[\w.-]{0,94}[\w])?"  # huggingface_hub's repo-id rule: 1-96 chars, \w at both ends
_REPO = re.compile(rf"^({_NAME})/({_NAME})$")
_REVISION = re.compile(r"^(refs/(?:pr|convert)/[\w.-]+|[\w.-]+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_CLI_HINT = "(huggingface_hub < 1.0: `huggingface-cli` instead of `hf`)"
_LOGIN = "log in with `hf auth login` or set HF_TOKEN " + _CLI_HINT


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


# --- where things live ----------------------------------------------------------------------


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
    if _COMMIT.match(revision):
        commit = revision
    else:
        try:
            commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
    if not _COMMIT.match(commit):
        return None
    snapshot = repo / "snapshots" / commit
    path = snapshot / ref.filename if ref.filename else snapshot
    return path if path.exists() else None


# --- errors ---------------------------------------------------------------------------------


def _is(exc: BaseException, *names: str) -> bool:
    """isinstance by class name: huggingface_hub moved its errors between releases."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _is_network(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError)) or _is(
        exc,
        "ConnectError",
        "ConnectTimeout",
        "ConnectionError",
        "NetworkError",
        "ProxyError",
        "ReadTimeout",
        "Timeout",
        "TimeoutException",
        "TransportError",
    )


def _secrets() -> list[str]:
    found = [os.environ.get(n, "") for n in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")]
    return [s for s in found if len(s) >= 4]


def scrub(text: str) -> str:
    """``text`` with any Hugging Face token (from the environment, or token-shaped) masked."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return _TOKEN_LIKE.sub("hf_***", text)


def _detail(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return scrub(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


def _download_hint(repo_id: str, revision: str | None, files: Sequence[str] = ()) -> str:
    words = ["hf", "download", repo_id, *files]
    if revision:
        words += ["--revision", revision]
    return "`" + " ".join(_quote(w) for w in words) + "`"


def _quote(word: str) -> str:
    return f'"{word}"' if any(c in word for c in "*? ") else word


@dataclass(frozen=True, slots=True)
class _Context:
    """Who is asking (a plan field) and what, for messages."""

    field: str
    ref: HubRef
    cache: Path

    def fail(self, text: str) -> LaunchError:
        return LaunchError(scrub(f"{self.field}: {text}"))

    def not_cached(self, what: str, hint: str, cause: BaseException | None = None) -> LaunchError:
        if is_offline() or (cause is not None and _is(cause, "OfflineModeIsEnabled")):
            why = "HF_HUB_OFFLINE is set"
            instead = "or unset HF_HUB_OFFLINE to let kohya-plan download it"
        else:
            why = "the Hugging Face Hub could not be reached"
            if cause is not None:
                why += f" ({_detail(cause)})"
            instead = "or check the network, proxy (HTTPS_PROXY) and HF_ENDPOINT and try again"
        return self.fail(
            f"{what} is not in the Hugging Face cache ({self.cache}) and {why}. "
            f"Download it on a machine with network: {hint} {_CLI_HINT}, then copy that "
            f"cache here (or point HF_HOME / HF_HUB_CACHE at it), {instead}."
        )

    def translate(self, exc: BaseException, what: str, hint: str) -> LaunchError:
        """A huggingface_hub (or network/disk) error as a message with the fix."""
        repo = self.ref.repo_id
        if _is(exc, "GatedRepoError"):
            return self.fail(
                f"{repo} is a gated model: accept its licence on https://huggingface.co/{repo} "
                f"while logged in, then {_LOGIN}."
            )
        if _is(exc, "RevisionNotFoundError"):
            return self.fail(
                f"revision {self.ref.revision!r} does not exist in {repo}; use a branch, tag "
                f"or commit hash listed on https://huggingface.co/{repo}/commits/main."
            )
        if _is(exc, "RepositoryNotFoundError"):
            return self.fail(
                f"{repo} was not found on the Hugging Face Hub. Check the spelling; if it is "
                f"private, {_LOGIN}."
            )
        if _is(exc, "OfflineModeIsEnabled"):
            return self.not_cached(what, hint, exc)
        if _is(exc, "LocalEntryNotFoundError"):
            return self.not_cached(what, hint, exc.__cause__ or exc.__context__)
        if _is(exc, "EntryNotFoundError"):
            return self.fail(
                f"{what} does not exist on the Hub; see the files on "
                f"https://huggingface.co/{repo}/tree/{self.ref.revision or 'main'}."
            )
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return self.fail(f"the Hub refused access to {repo} (HTTP {status}); {_LOGIN}.")
        if _is(exc, "HfHubHTTPError"):
            return self.fail(f"the Hugging Face Hub failed for {what}: {_detail(exc)}. Try again.")
        if _is_network(exc):
            return self.not_cached(what, hint, exc)
        if isinstance(exc, OSError):
            return self.fail(f"could not store {what} in {self.cache}: {_detail(exc)}.")
        raise exc


# --- progress bars --------------------------------------------------------------------------


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """huggingface_hub's own tqdm bars (stderr; HF_HUB_DISABLE_PROGRESS_BARS still applies)."""
    if enabled:
        yield
        return
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


# --- Diffusers pipelines: which files sd-scripts needs --------------------------------------

# sd-scripts loads the pipeline with tokenizer=None and safety_checker=None (train_util,
# sdxl_train_util): those two are never read. Everything else model_index.json lists is.
_NOT_LOADED = frozenset({"tokenizer", "safety_checker"})
_SIDE_FILES = (".json", ".txt", ".model")
_SKIP_WEIGHTS = (
    ".ckpt",
    ".pt",
    ".pth",
    ".onnx",
    ".onnx_data",
    ".msgpack",
    ".h5",
    ".pb",
    ".gguf",
    ".tflite",
)
_INDEX = re.compile(r"^[^.]+\.(safetensors|bin)\.index(?:\.([\w-]+))?\.json$")
_WEIGHT = re.compile(r"^[^.]+(?:\.([\w-]+))?\.(safetensors|bin)$")
_SHARD = re.compile(r"-\d+-of-\d+")


def pipeline_components(index: dict[str, Any]) -> list[str]:
    """The model_index.json components sd-scripts' pipeline loading reads from disk."""
    return [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and name not in _NOT_LOADED
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
    ]


def _weight_kind(name: str) -> tuple[str, str] | None:
    """(format, variant) of a weight or weight-index file; variant "" when none."""
    index = _INDEX.match(name)
    if index:
        return index.group(1), index.group(2) or ""
    weight = _WEIGHT.match(_SHARD.sub("", name))
    if weight:
        return weight.group(2), weight.group(1) or ""
    return None


def _preference(kind: tuple[str, str]) -> tuple[int, int, str]:
    fmt, variant = kind
    rank = 0 if not variant else 1 if variant == "fp16" else 2
    return (rank, 0 if fmt == "safetensors" else 1, variant)


def select_pipeline_files(files: Iterable[str], components: Iterable[str]) -> list[str]:
    """The repo files sd-scripts needs for these components, one weight set each.

    Per component folder: every config/vocabulary file (``.json``, ``.txt``, ``.model``) and
    the best weight set — plain ``.safetensors``, else plain ``.bin``, else the ``fp16``
    variant, else any other — with shards and index. ONNX, Flax, ``.ckpt`` and duplicate
    variants are skipped. ``model_index.json`` is always included.
    """
    names = list(files)
    chosen = ["model_index.json"]
    for component in components:
        prefix = f"{component}/" if component else ""
        weights: dict[tuple[str, str], list[str]] = {}
        for path in names:
            if not path.startswith(prefix) or "/" in path[len(prefix) :]:
                continue
            name = path[len(prefix) :]
            kind = _weight_kind(name)
            if kind is not None:
                weights.setdefault(kind, []).append(path)
            elif name.endswith(_SIDE_FILES) and name != "model_index.json":
                chosen.append(path)
            # anything else (ONNX, Flax, .ckpt, README, images) is not needed
        if weights:
            chosen += sorted(weights[min(weights, key=_preference)])
    return list(dict.fromkeys(chosen))


def missing_pipeline_parts(folder: Path) -> list[str]:
    """What a Diffusers folder lacks for sd-scripts to load it (empty when complete)."""
    index = read_json_object(folder / "model_index.json")
    if index is None:
        return ["model_index.json"]
    missing: list[str] = []
    for name in pipeline_components(index):
        sub = folder / name
        class_name = str(index[name][1])
        present = {p.name for p in sub.iterdir() if p.exists()} if sub.is_dir() else set()
        if not present:
            missing.append(f"{name}/")
        elif class_name.endswith("Scheduler"):
            if "scheduler_config.json" not in present:
                missing.append(f"{name}/scheduler_config.json")
        elif class_name.endswith(("ImageProcessor", "FeatureExtractor")):
            if "preprocessor_config.json" not in present:
                missing.append(f"{name}/preprocessor_config.json")
        elif "Tokenizer" not in class_name:
            if "config.json" not in present:
                missing.append(f"{name}/config.json")
            if not any(_WEIGHT.match(_SHARD.sub("", p)) for p in present):
                missing.append(f"{name}/ weights")
    return missing


_PIPELINE_HINT = ("model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors")


# --- resolving ------------------------------------------------------------------------------


def resolve_model(
    ref: HubRef,
    *,
    family: str,
    progress: bool = True,
    cache_dir: Path | None = None,
    field: str = "model.base",
) -> Path:
    """Make ``ref`` available locally and return the path to give sd-scripts.

    * A file (``ORG/NAME/x.safetensors``): ``hf_hub_download``. The cache keeps files as
      symlinks to extension-less blobs, which sd-scripts cannot use (SD1.5 resolves the link
      and then loads ``blobs/<sha>`` with torch.load; SDXL follows a relative ``readlink``
      from its own working directory), so a hard link named like the file is made in
      ``models--ORG--NAME/kohya-plan/<commit>/`` — deleted with the repo by
      ``hf cache delete`` — or, where hard links are impossible, a copy.
    * A Diffusers repo: ``snapshot_download`` of only what sd-scripts' pipeline loading reads
      (see :func:`select_pipeline_files`); returns the snapshot folder.

    Offline (``HF_HUB_OFFLINE``) only the cache is used. The model's family (from
    ``model_index.json`` or the safetensors header, read before the weights are fetched where
    the Hub allows) must match ``family``. Raises LaunchError with the fix on any failure.
    """
    context = _Context(field, ref, cache_dir or hub_cache_dir())
    with _progress_bars(progress):
        if ref.filename:
            return _resolve_file(context, family)
        return _resolve_pipeline(context, family)


def _check_family(context: _Context, detected: str | None, family: str | None) -> None:
    if family is None:
        return
    problem = family_problem(detected, family)
    if problem is not None:
        msg = f"{context.ref} is {problem}."
        raise context.fail(msg)


def _resolve_file(context: _Context, family: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    ref = context.ref
    assert ref.filename is not None
    offline = is_offline()
    if not offline and cached_model(ref, context.cache) is None:
        _precheck_header(context, family)
    hint = _download_hint(ref.repo_id, ref.revision, [ref.filename])
    try:
        local = hf_hub_download(
            ref.repo_id,
            ref.filename,
            revision=ref.revision,
            cache_dir=str(context.cache),
            local_files_only=offline,
        )
    except Exception as exc:
        raise context.translate(exc, str(ref), hint) from None
    path = Path(local)
    try:
        detected = detect_family(path)
    except CheckpointError as exc:
        msg = f"the cached {ref.filename} is damaged ({exc}); remove it with `hf cache delete`."
        raise context.fail(msg) from None
    _check_family(context, detected, family)
    return loadable_file(path, field=context.field)


def _precheck_header(context: _Context, family: str | None) -> None:
    """Refuse a wrong family from the remote header (a ranged read), before a big download."""
    ref = context.ref
    if family is None or ref.filename is None or not ref.filename.lower().endswith(".safetensors"):
        return
    try:
        from huggingface_hub import HfApi

        meta = HfApi().parse_safetensors_file_metadata(
            ref.repo_id, ref.filename, revision=ref.revision
        )
        header: dict[str, Any] = dict(meta.tensors)
        header["__metadata__"] = dict(meta.metadata or {})
        detected = family_from_header(header)
    except Exception:  # best effort: the download below reports real errors
        return
    _check_family(context, detected, family)


def _resolve_pipeline(context: _Context, family: str) -> Path:
    ref = context.ref
    hint = _download_hint(ref.repo_id, ref.revision, [])
    hint = hint[:-1] + " --include " + " ".join(f'"{p}"' for p in _PIPELINE_HINT) + "`"
    cached = cached_model(ref, context.cache)
    pinned = ref.revision is not None and _COMMIT.match(ref.revision) is not None
    if is_offline() or (pinned and cached is not None and not missing_pipeline_parts(cached)):
        return _use_cached_pipeline(context, cached, family, hint, None)

    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    try:
        files = HfApi().list_repo_files(ref.repo_id, revision=ref.revision)
    except Exception as exc:
        if _is_network(exc) or _is(exc, "OfflineModeIsEnabled"):
            return _use_cached_pipeline(context, cached, family, hint, exc)
        raise context.translate(exc, str(ref), hint) from None
    if "model_index.json" not in files:
        raise _not_a_pipeline(context, files)
    try:
        index_file = Path(
            hf_hub_download(
                ref.repo_id,
                "model_index.json",
                revision=ref.revision,
                cache_dir=str(context.cache),
            )
        )
        index = read_json_object(index_file) or {}
        components = pipeline_components(index)
        if "text_encoder/config.json" in files:  # tells SD2 from SD1, before the weights
            hf_hub_download(
                ref.repo_id,
                "text_encoder/config.json",
                revision=ref.revision,
                cache_dir=str(context.cache),
            )
        _check_family(context, diffusers_family(index_file.parent), family)
        folder = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            cache_dir=str(context.cache),
            allow_patterns=select_pipeline_files(files, components),
        )
    except LaunchError:
        raise
    except Exception as exc:
        raise context.translate(exc, str(ref), hint) from None
    return _complete_pipeline(context, Path(folder), family, hint)


def _use_cached_pipeline(
    context: _Context, cached: Path | None, family: str, hint: str, cause: BaseException | None
) -> Path:
    if cached is None or not cached.is_dir():
        raise context.not_cached(str(context.ref), hint, cause)
    return _complete_pipeline(context, cached, family, hint, from_cache=True, cause=cause)


def _complete_pipeline(
    context: _Context,
    folder: Path,
    family: str,
    hint: str,
    *,
    from_cache: bool = False,
    cause: BaseException | None = None,
) -> Path:
    missing = missing_pipeline_parts(folder)
    if missing == ["model_index.json"]:
        msg = (
            f"{context.ref} is not a Diffusers model (no model_index.json); name its "
            "checkpoint file instead: ORG/NAME/FILE.safetensors."
        )
        raise context.fail(msg)
    if missing:
        listed = ", ".join(missing[:6]) + (" …" if len(missing) > 6 else "")
        what = f"the cached snapshot of {context.ref} ({folder.name[:12]}) lacks {listed}"
        if from_cache:
            raise context.not_cached(what, hint, cause)
        msg = f"{what}; the repo does not provide them in a form sd-scripts loads."
        raise context.fail(msg)
    _check_family(context, diffusers_family(folder), family)
    return folder


def _not_a_pipeline(context: _Context, files: Sequence[str]) -> LaunchError:
    candidates = [f for f in files if f.lower().endswith((".safetensors", ".ckpt"))]
    text = f"{context.ref} is not a Diffusers model (no model_index.json)"
    if candidates:
        ref = context.ref
        shown = ", ".join(str(HubRef(ref.repo_id, ref.revision, c)) for c in candidates[:5])
        more = f" (and {len(candidates) - 5} more)" if len(candidates) > 5 else ""
        return context.fail(f"{text}; name one of its checkpoint files: {shown}{more}.")
    return context.fail(f"{text} and has no .safetensors/.ckpt file to use instead.")


def resolve_vae(ref: HubRef, *, progress: bool = True, cache_dir: Path | None = None) -> Path:
    """``model.vae`` from the Hub: a file, or a Diffusers VAE repo (root or ``vae/``).

    sd-scripts' ``model_util.load_vae`` accepts a file or a folder with an AutoencoderKL
    config at its root or in ``vae/``; only those files are fetched.
    """
    context = _Context("model.vae", ref, cache_dir or hub_cache_dir())
    with _progress_bars(progress):
        if ref.filename:
            return _resolve_file(context, family=None)
        return _resolve_vae_repo(context)


def _resolve_vae_repo(context: _Context) -> Path:
    ref = context.ref
    hint = _download_hint(ref.repo_id, ref.revision, ["config.json", "vae/config.json"])
    cached = cached_model(ref, context.cache)
    if is_offline():
        if cached is None:
            raise context.not_cached(str(ref), hint)
        return cached
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(ref.repo_id, revision=ref.revision)
        component = "" if "config.json" in files else "vae"
        wanted = [f for f in select_pipeline_files(files, [component]) if f in files]
        folder = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            cache_dir=str(context.cache),
            allow_patterns=wanted,
        )
    except Exception as exc:
        if cached is not None and (_is_network(exc) or _is(exc, "OfflineModeIsEnabled")):
            return cached
        raise context.translate(exc, str(ref), hint) from None
    return Path(folder)


def loadable_file(path: Path, *, field: str = "model.base") -> Path:
    """A path to ``path``'s file that sd-scripts loads correctly: a real file, right suffix.

    sd-scripts resolves a symlinked checkpoint itself and then picks safetensors or torch.load
    by the *target's* suffix (SDXL even resolves relative links against its own working
    directory). So: a regular file is returned as is; a symlink whose target keeps the suffix
    is returned resolved; a link into a Hugging Face cache ``blobs/`` folder gets a hard link
    (or copy) named like the file inside that repo's cache folder; anything else is refused.
    """
    if not path.is_symlink():
        return path
    target = path.resolve()
    if target.suffix.lower() == path.suffix.lower():
        return target
    if target.parent.name != "blobs" or not target.is_file():
        msg = (
            f"{field}: {path} is a symlink to {target}, whose name lacks the "
            f"{path.suffix} suffix sd-scripts needs to load it; point at the file itself."
        )
        raise LaunchError(msg)
    repo = target.parent.parent
    parts = path.parts
    where = parts[parts.index("snapshots") + 1 :] if "snapshots" in parts else (path.name,)
    link = repo.joinpath("kohya-plan", *where)
    if link.is_file() and not link.is_symlink():
        try:
            if link.samefile(target) or link.stat().st_size == target.stat().st_size:
                return link
        except OSError:
            pass
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(target, temporary)
    except OSError as exc:
        logger.warning(
            "copying %s to %s (a hard link is impossible here: %s)", path.name, link, exc.strerror
        )
        shutil.copyfile(target, temporary)
    temporary.replace(link)
    return link


# --- tokenizers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenizerSource:
    """A tokenizer sd-scripts loads by repo id (and the folder name it caches it under)."""

    repo_id: str
    subfolder: str | None = None

    @property
    def folder(self) -> str:
        """``strategy_base._load_tokenizer``: ``model_id.replace("/", "_")``."""
        return self.repo_id.replace("/", "_")


CLIP_L = TokenizerSource("openai/clip-vit-large-patch14")
CLIP_BIG_G = TokenizerSource("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
SD2_TOKENIZER = TokenizerSource("stabilityai/stable-diffusion-2", "tokenizer")
TOKENIZERS: dict[str, tuple[TokenizerSource, ...]] = {
    "sd15": (CLIP_L,),
    "sd2": (SD2_TOKENIZER,),
    "sdxl": (CLIP_L, CLIP_BIG_G),
}
"""strategy_sd.py (TOKENIZER_ID, V2_STABLE_DIFFUSION_ID + subfolder) and strategy_sdxl.py."""

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
"""What CLIPTokenizer.from_pretrained(folder) needs; tokenizer_config.json carries
model_max_length 77, without which sd-scripts pads prompts to an absurd length."""
OPTIONAL_TOKENIZER_FILES = ("special_tokens_map.json", "tokenizer.json")


def tokenizer_ready(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer CLIPTokenizer can load (the three files)."""
    return all((folder / name).is_file() for name in TOKENIZER_FILES)


def resolve_tokenizers(family: str, cache_dir: Path, *, progress: bool = True) -> Path:
    """Fill ``cache_dir`` so sd-scripts' ``--tokenizer_cache_dir cache_dir`` never downloads.

    For each tokenizer of ``family`` (sd15: CLIP ViT-L; sdxl: also OpenCLIP bigG; sd2: the
    SD2 repo's ``tokenizer/``), ``cache_dir/<repo id with / → _>`` is left alone when it is
    complete; otherwise the files come from the Hugging Face cache (downloaded there first
    unless offline) and are copied in. A new folder appears atomically: sd-scripts only tests
    that the folder exists. Returns ``cache_dir``.
    """
    if family not in TOKENIZERS:
        msg = f"no tokenizer is known for model family {family!r}"
        raise ValueError(msg)
    cache = hub_cache_dir()
    for source in TOKENIZERS[family]:
        target = cache_dir / source.folder
        if tokenizer_ready(target):
            continue
        with _progress_bars(progress):
            files = _fetch_tokenizer(source, cache)
        _install_tokenizer(target, files)
    return cache_dir


def _fetch_tokenizer(source: TokenizerSource, cache: Path) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    ref = HubRef(source.repo_id)
    context = _Context(f"tokenizer {source.repo_id}", ref, cache)
    names = [*TOKENIZER_FILES, *OPTIONAL_TOKENIZER_FILES]
    in_repo = [f"{source.subfolder}/{n}" if source.subfolder else n for n in names]
    hint = _download_hint(source.repo_id, None, in_repo[:4])
    offline = is_offline()
    found: dict[str, Path] = {}
    for name in names:
        try:
            local = hf_hub_download(
                source.repo_id,
                name,
                subfolder=source.subfolder,
                cache_dir=str(cache),
                local_files_only=offline,
            )
        except Exception as exc:
            optional = name in OPTIONAL_TOKENIZER_FILES
            if optional and _is(exc, "EntryNotFoundError"):
                continue
            raise context.translate(exc, name, hint) from None
        found[name] = Path(local)
    return found


def _install_tokenizer(target: Path, files: dict[str, Path]) -> None:
    """Copy into ``target``: a new folder by rename, an existing one file by file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, source in files.items():
                shutil.copyfile(source, staging / name)
            try:
                staging.rename(target)
                return
            except OSError:
                if not tokenizer_ready(target):  # not another process finishing first
                    raise
                return
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    for name, source in files.items():
        destination = target / name
        if destination.exists():
            continue  # never overwrite what someone put there
        temporary = target / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(source, temporary)
        temporary.replace(destination)
