"""The tokenizers sd-scripts would download mid-run, made local in ``tokenizer_cache_dir`` first."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kohya_plan.inputs.hub.cache import hub_cache_dir, is_offline
from kohya_plan.inputs.hub.fetch import Context, download_hint, is_error, progress_bars
from kohya_plan.inputs.hub.refs import HubRef


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
        with progress_bars(progress):
            files = _fetch_tokenizer(source, cache)
        _install_tokenizer(target, files)
    return cache_dir


def _fetch_tokenizer(source: TokenizerSource, cache: Path) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    ref = HubRef(source.repo_id)
    context = Context(f"tokenizer {source.repo_id}", ref, cache)
    names = [*TOKENIZER_FILES, *OPTIONAL_TOKENIZER_FILES]
    in_repo = [f"{source.subfolder}/{n}" if source.subfolder else n for n in names]
    hint = download_hint(source.repo_id, None, in_repo[:4])
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
            if optional and is_error(exc, "EntryNotFoundError"):
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
