"""Which files of a Diffusers repo or folder sd-scripts reads (pure, but for one folder listing)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kohya_plan.inputs.checkpoint import read_json_object

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

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
