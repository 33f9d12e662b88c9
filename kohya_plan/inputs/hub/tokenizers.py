"""The tokenizers sd-scripts would download mid-run, made local in ``tokenizer_cache_dir`` first."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kohya_plan.errors import LaunchError, os_error_text
from kohya_plan.families import CLIP_L, FAMILIES, SD2_TOKENIZER, TokenizerSource
from kohya_plan.inputs.hub.cache import hub_cache_dir
from kohya_plan.inputs.hub.fetch import Context, download_hint, hub_offline, is_error, progress_bars
from kohya_plan.inputs.hub.refs import HubRef

TOKENIZERS: dict[str, tuple[TokenizerSource, ...]] = {
    **{f.name: f.tokenizers for f in FAMILIES.values()},
    "sd2": (SD2_TOKENIZER,),
}
"""The tokenizers each family loads (declared by kohya_plan.families; SD2 for its message)."""

TOKENIZER_FILES = CLIP_L.files
"""What CLIPTokenizer.from_pretrained(folder) needs; tokenizer_config.json carries
model_max_length 77, without which sd-scripts pads prompts to an absurd length."""
OPTIONAL_TOKENIZER_FILES = CLIP_L.optional


def tokenizer_ready(folder: Path, source: TokenizerSource = CLIP_L) -> bool:
    """Whether ``folder`` holds what ``source``'s tokenizer class loads (its required files,
    and one of its alternatives)."""
    if not all((folder / name).is_file() for name in source.files):
        return False
    return not source.any_of or any((folder / name).is_file() for name in source.any_of)


def resolve_tokenizers(family: str, cache_dir: Path, *, progress: bool = True) -> Path:
    """Fill ``cache_dir`` so sd-scripts' ``--tokenizer_cache_dir cache_dir`` never downloads.

    For each tokenizer of ``family`` (its `Family.tokenizers`: sd15 CLIP ViT-L; sdxl also
    OpenCLIP bigG; flux CLIP-L and T5-XXL), ``cache_dir/<repo id with / → _>`` is left alone
    when it is complete; otherwise the files come from the Hugging Face cache (downloaded there
    first unless offline) and are copied in. A new folder appears atomically: sd-scripts only
    tests that the folder exists. Returns ``cache_dir``.
    """
    if family not in TOKENIZERS:
        msg = f"no tokenizer is known for model family {family!r}"
        raise ValueError(msg)
    cache = hub_cache_dir()
    for source in TOKENIZERS[family]:
        target = cache_dir / source.folder
        if tokenizer_ready(target, source):
            continue
        with progress_bars(progress):
            files = _fetch_tokenizer(source, cache)
        try:
            _install_tokenizer(target, files, source)
        except OSError as exc:
            why, fix = os_error_text(exc)
            msg = (
                f"model.tokenizer_cache_dir: cannot store the tokenizer {source.repo_id} in "
                f"{target}: {why} — {fix}: set model.tokenizer_cache_dir to a writable folder, "
                "or HF_HOME elsewhere (the default is $HF_HOME/kohya-plan/tokenizers)"
            )
            raise LaunchError(msg) from None
    return cache_dir


def _fetch_tokenizer(source: TokenizerSource, cache: Path) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    ref = HubRef(source.repo_id)
    context = Context(f"tokenizer {source.repo_id}", ref, cache)
    names = source.all_files
    in_repo = [f"{source.subfolder}/{n}" if source.subfolder else n for n in names]
    hint = download_hint(
        source.repo_id, None, in_repo[: len(source.files) + min(1, len(source.any_of))]
    )
    offline = hub_offline()
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
            optional = name not in source.files
            if optional and is_error(exc, "EntryNotFoundError"):
                continue
            if name in source.any_of and is_error(exc, "LocalEntryNotFoundError"):
                continue  # another alternative may be cached
            raise context.translate(exc, name, hint) from None
        found[name] = Path(local)
    if source.any_of and not any(n in found for n in source.any_of):
        what = " or ".join(source.any_of)
        missing = f"{what} of {source.repo_id}"
        raise context.not_cached(missing, hint)
    return found


def _install_tokenizer(
    target: Path, files: dict[str, Path], tokenizer: TokenizerSource = CLIP_L
) -> None:
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
                if not tokenizer_ready(target, tokenizer):  # not another finishing first
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
