"""Models, VAEs and tokenizers on the Hugging Face Hub: references, the cache, downloads."""

from kohya_plan.families import CLIP_BIG_G, CLIP_L, T5_XXL, TokenizerSource
from kohya_plan.inputs.hub.cache import (
    cached_model,
    default_tokenizer_cache,
    hf_home,
    hub_cache_dir,
    is_offline,
)
from kohya_plan.inputs.hub.fetch import (
    loadable_file,
    resolve_model,
    resolve_model_file,
    resolve_vae,
    scrub,
)
from kohya_plan.inputs.hub.pipeline import (
    missing_pipeline_parts,
    pipeline_components,
    select_pipeline_files,
)
from kohya_plan.inputs.hub.refs import HUB_PREFIX, HubRef, is_hub_ref, parse_model_ref
from kohya_plan.inputs.hub.tokenizers import TOKENIZERS, resolve_tokenizers, tokenizer_ready

__all__ = [
    "CLIP_BIG_G",
    "CLIP_L",
    "HUB_PREFIX",
    "T5_XXL",
    "TOKENIZERS",
    "HubRef",
    "TokenizerSource",
    "cached_model",
    "default_tokenizer_cache",
    "hf_home",
    "hub_cache_dir",
    "is_hub_ref",
    "is_offline",
    "loadable_file",
    "missing_pipeline_parts",
    "parse_model_ref",
    "pipeline_components",
    "resolve_model",
    "resolve_model_file",
    "resolve_tokenizers",
    "resolve_vae",
    "scrub",
    "select_pipeline_files",
    "tokenizer_ready",
]
