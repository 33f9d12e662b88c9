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

Pure pieces live beside this module: ``refs`` (the syntax), ``cache`` (where things are),
``pipeline`` (which files), ``tokenizers``. This module is the network edge.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_plan.errors import LaunchError, os_error_text
from kohya_plan.inputs.checkpoint import (
    CHECKPOINT_SUFFIXES,
    CheckpointError,
    detect_family,
    diffusers_family,
    family_from_header,
    family_problem,
    file_problem,
    read_json_object,
)
from kohya_plan.inputs.hub.cache import cached_model, hub_cache_dir, is_offline
from kohya_plan.inputs.hub.pipeline import (
    missing_pipeline_parts,
    pipeline_components,
    select_pipeline_files,
)
from kohya_plan.inputs.hub.refs import COMMIT, HubRef

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

logger = logging.getLogger(__name__)

_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_CLI_HINT = "(huggingface_hub < 1.0: `huggingface-cli` instead of `hf`)"
_LOGIN = "log in with `hf auth login` or set HF_TOKEN " + _CLI_HINT


PROBE_TIMEOUT_S = 3.0
"""How long the one reachability probe waits (huggingface_hub alone retries for ~24 s)."""


@cache
def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached from here, or None: one short TCP probe.

    huggingface_hub retries every failed request five times with back-off (about 24 s per
    file) before it gives up, so an offline machine without HF_HUB_OFFLINE would wait that
    long for each file before the (good) error. One connection attempt to the endpoint
    (``HF_ENDPOINT``), or to the proxy when ``HTTPS_PROXY`` is set, tells at once; asked once
    per process.
    """
    import socket
    from urllib.parse import urlsplit

    proxy = next(
        (
            v
            for n in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
            if (v := os.environ.get(n))
        ),
        None,
    )
    target = urlsplit(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = target.hostname or "huggingface.co"
    try:
        port = target.port or (80 if target.scheme == "http" else 443)
    except ValueError:
        port = 443
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def hub_offline() -> bool:
    """Use only the cache: HF_HUB_OFFLINE is set, or the Hub cannot be reached (probed once)."""
    return is_offline() or hub_unreachable() is not None


def is_error(exc: BaseException, *names: str) -> bool:
    """isinstance by class name: huggingface_hub moved its errors between releases."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _is_network(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError)) or is_error(
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


def download_hint(repo_id: str, revision: str | None, files: Sequence[str] = ()) -> str:
    words = ["hf", "download", repo_id, *files]
    if revision:
        words += ["--revision", revision]
    return "`" + " ".join(_quote(w) for w in words) + "`"


def _quote(word: str) -> str:
    return f'"{word}"' if any(c in word for c in "*? ") else word


@dataclass(frozen=True, slots=True)
class Context:
    """Who is asking (a plan field) and what, for messages."""

    field: str
    ref: HubRef
    cache: Path

    def fail(self, text: str) -> LaunchError:
        return LaunchError(scrub(f"{self.field}: {text}"))

    def not_cached(self, what: str, hint: str, cause: BaseException | None = None) -> LaunchError:
        if is_offline() or (cause is not None and is_error(cause, "OfflineModeIsEnabled")):
            why = "HF_HUB_OFFLINE is set"
            instead = "or unset HF_HUB_OFFLINE to let kohya-plan download it"
        else:
            why = "the Hugging Face Hub could not be reached"
            reason = hub_unreachable()
            if reason is not None:
                why += f" ({reason})"
            elif cause is not None:
                why += f" ({_detail(cause)})"
            instead = (
                "or check the network, proxy (HTTPS_PROXY) and HF_ENDPOINT and try again; to "
                "work offline from the cache without trying the network, set HF_HUB_OFFLINE=1"
            )
        return self.fail(
            f"{what} is not in the Hugging Face cache ({self.cache}) and {why}. "
            f"Download it on a machine with network: {hint} {_CLI_HINT}, then copy that "
            f"cache here (or point HF_HOME / HF_HUB_CACHE at it), {instead}."
        )

    def translate(self, exc: BaseException, what: str, hint: str) -> LaunchError:
        """A huggingface_hub (or network/disk) error as a message with the fix."""
        repo = self.ref.repo_id
        if is_error(exc, "GatedRepoError"):
            return self.fail(
                f"{repo} is a gated model: accept its licence on https://huggingface.co/{repo} "
                f"while logged in, then {_LOGIN}."
            )
        if is_error(exc, "RevisionNotFoundError"):
            return self.fail(
                f"revision {self.ref.revision!r} does not exist in {repo}; use a branch, tag "
                f"or commit hash listed on https://huggingface.co/{repo}/commits/main."
            )
        if is_error(exc, "RepositoryNotFoundError"):
            return self.fail(
                f"{repo} was not found on the Hugging Face Hub. Check the spelling; if it is "
                f"private, {_LOGIN}."
            )
        if is_error(exc, "OfflineModeIsEnabled"):
            return self.not_cached(what, hint, exc)
        if is_error(exc, "LocalEntryNotFoundError"):
            return self.not_cached(what, hint, exc.__cause__ or exc.__context__)
        if is_error(exc, "EntryNotFoundError"):
            return self.fail(
                f"{what} does not exist on the Hub; see the files on "
                f"https://huggingface.co/{repo}/tree/{self.ref.revision or 'main'}."
            )
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return self.fail(f"the Hub refused access to {repo} (HTTP {status}); {_LOGIN}.")
        if is_error(exc, "HfHubHTTPError"):
            return self.fail(f"the Hugging Face Hub failed for {what}: {_detail(exc)}. Try again.")
        if _is_network(exc):
            return self.not_cached(what, hint, exc)
        if isinstance(exc, OSError):
            why, fix = os_error_text(exc)
            return self.fail(
                f"could not store {what} in the Hugging Face cache {self.cache}: {why} "
                f"({_detail(exc)}) — {fix}, or set HF_HOME (or HF_HUB_CACHE) to a writable "
                "folder."
            )
        raise exc


# --- progress bars --------------------------------------------------------------------------


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
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
    context = Context(field, ref, cache_dir or hub_cache_dir())
    with progress_bars(progress):
        if ref.filename:
            return _resolve_file(context, family)
        return _resolve_pipeline(context, family)


def _check_family(context: Context, detected: str | None, family: str | None) -> None:
    if family is None:
        return
    problem = family_problem(detected, family)
    if problem is not None:
        msg = f"{context.ref} is {problem}."
        raise context.fail(msg)


def _resolve_file(context: Context, family: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    ref = context.ref
    assert ref.filename is not None
    offline = hub_offline()
    if not offline and cached_model(ref, context.cache) is None:
        _precheck_header(context, family)
    hint = download_hint(ref.repo_id, ref.revision, [ref.filename])
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


def _precheck_header(context: Context, family: str | None) -> None:
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


def _resolve_pipeline(context: Context, family: str) -> Path:
    ref = context.ref
    hint = download_hint(ref.repo_id, ref.revision, [])
    hint = hint[:-1] + " --include " + " ".join(f'"{p}"' for p in _PIPELINE_HINT) + "`"
    cached = cached_model(ref, context.cache)
    pinned = ref.revision is not None and COMMIT.match(ref.revision) is not None
    if hub_offline() or (pinned and cached is not None and not missing_pipeline_parts(cached)):
        return _use_cached_pipeline(context, cached, family, hint, None)

    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    try:
        files = HfApi().list_repo_files(ref.repo_id, revision=ref.revision)
    except Exception as exc:
        if _is_network(exc) or is_error(exc, "OfflineModeIsEnabled"):
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
    context: Context, cached: Path | None, family: str, hint: str, cause: BaseException | None
) -> Path:
    if cached is None or not cached.is_dir():
        raise context.not_cached(str(context.ref), hint, cause)
    return _complete_pipeline(context, cached, family, hint, from_cache=True, cause=cause)


def _complete_pipeline(
    context: Context,
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


def _not_a_pipeline(context: Context, files: Sequence[str]) -> LaunchError:
    candidates = [f for f in files if f.lower().endswith(CHECKPOINT_SUFFIXES)]
    text = f"{context.ref} is not a Diffusers model (no model_index.json)"
    if candidates:
        ref = context.ref
        shown = ", ".join(str(HubRef(ref.repo_id, ref.revision, c)) for c in candidates[:5])
        more = f" (and {len(candidates) - 5} more)" if len(candidates) > 5 else ""
        return context.fail(f"{text}; name one of its checkpoint files: {shown}{more}.")
    return context.fail(
        f"{text} and has no checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}) to use instead."
    )


def resolve_model_file(
    ref: HubRef,
    *,
    field: str,
    kind: str,
    what: str,
    example: str,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> Path:
    """One model file a family needs besides the base (FLUX.1's AE, CLIP-L, T5-XXL) from the
    Hub: it must name ONE file in its repo (``ORG/NAME/FILE.safetensors``), and its header
    must show ``kind``. Returns the local path to give sd-scripts (see :func:`resolve_model`).
    """
    context = Context(field, ref, cache_dir or hub_cache_dir())
    if not ref.filename:
        msg = (
            f"{ref} names a repo, but sd-scripts needs {what} as one file; name the file "
            f"inside it: ORG/NAME/FILE.safetensors, e.g. {example}."
        )
        raise context.fail(msg)
    with progress_bars(progress):
        path = _resolve_file(context, None)
    try:
        problem = file_problem(detect_family(path), kind, what)
    except CheckpointError as exc:
        msg = f"the cached {ref.filename} is damaged ({exc}); remove it with `hf cache delete`."
        raise context.fail(msg) from None
    if problem is not None:
        msg = f"{ref} is {problem}."
        raise context.fail(msg)
    return path


def resolve_vae(ref: HubRef, *, progress: bool = True, cache_dir: Path | None = None) -> Path:
    """``model.vae`` from the Hub: a file, or a Diffusers VAE repo (root or ``vae/``).

    sd-scripts' ``model_util.load_vae`` accepts a file or a folder with an AutoencoderKL
    config at its root or in ``vae/``; only those files are fetched.
    """
    context = Context("model.vae", ref, cache_dir or hub_cache_dir())
    with progress_bars(progress):
        if ref.filename:
            return _resolve_file(context, family=None)
        return _resolve_vae_repo(context)


def _resolve_vae_repo(context: Context) -> Path:
    ref = context.ref
    hint = download_hint(ref.repo_id, ref.revision, ["config.json", "vae/config.json"])
    cached = cached_model(ref, context.cache)
    if hub_offline():
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
        if cached is not None and (_is_network(exc) or is_error(exc, "OfflineModeIsEnabled")):
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
