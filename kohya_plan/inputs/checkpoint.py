"""Tell SD1.5, SD2 and SDXL apart from a checkpoint's header, without loading any weights.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header
that names every tensor with its dtype, shape and byte range; only that header is read here
(a few hundred kilobytes even for SDXL), never the tensors. The key prefixes are those of
sd-scripts' single-file loaders (``library/model_util.py``, ``library/sdxl_model_util.py``):

* SD1.x: ``cond_stage_model.transformer.`` (CLIP ViT-L),
* SD2.x: ``cond_stage_model.model.`` (OpenCLIP ViT-H),
* SDXL: ``conditioner.embedders.0.transformer.`` and ``conditioner.embedders.1.model.``.

A Diffusers folder is recognised by its ``model_index.json``. A pickled ``.ckpt`` cannot be
read without torch (and unpickling runs code), so its family is reported as unknown.
Stdlib only, and fast: ``check`` calls this on every run.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

Family = Literal["sd15", "sd2", "sdxl", "lora", "vae"]
"""What a file holds: a base model of one family, a LoRA, or a VAE on its own."""

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
"""Single-file checkpoints: a local file or a path inside a Hub repo ending in one of these."""

MAX_HEADER_BYTES = 100_000_000
"""The safetensors format's own limit on the JSON header."""

_SDXL_PREFIXES = ("conditioner.embedders.1.model.", "conditioner.embedders.0.transformer.")
_SD1_PREFIX = "cond_stage_model.transformer."
_SD2_PREFIX = "cond_stage_model.model."
_UNET_PREFIX = "model.diffusion_model."
_LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lycoris_")
_LORA_MARKERS = (
    ".lora_down.",
    ".lora_up.",
    ".lora_A.",
    ".lora_B.",
    ".lora.down.",
    ".lora.up.",
    ".hada_w1_",
    ".lokr_w1",
)
# SD1/SD2 U-Net: the first cross-attention's key projection is [320, text width].
_UNET_CONTEXT_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_CONTEXT_WIDTH: dict[int, Family] = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
_ARCHITECTURES: tuple[tuple[str, Family], ...] = (
    ("stable-diffusion-xl-v1-base", "sdxl"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-v1", "sd15"),
)
_FAMILY_NAMES: dict[str, str] = {
    "sd15": "an SD1.x model",
    "sd2": "an SD2.x model",
    "sdxl": "an SDXL model",
    "lora": "a LoRA (a trained add-on, not a base model)",
    "vae": "a VAE on its own (not a full model)",
}


class CheckpointError(ValueError):
    """A model file that cannot be what it claims to be (truncated, corrupt, not safetensors)."""


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file (tensor names → dtype/shape/offsets).

    Reads the 8-byte length and the header only. Raises :class:`CheckpointError` when the
    file cannot be a complete safetensors file — too short, an impossible header length,
    a header that is not a JSON object, or tensor data that ends before (a download cut
    short) or after the end of the file; safetensors refuses all of these too, but only
    after sd-scripts has spent minutes starting up.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                msg = f"{path.name} is {size} bytes long, too short to be a safetensors file"
                raise CheckpointError(msg)
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                msg = (
                    f"{path.name} is not a valid safetensors file (its header length {length} "
                    f"does not fit a {size}-byte file); is it cut short or another format?"
                )
                raise CheckpointError(msg)
            raw = handle.read(length)
    except OSError as exc:
        msg = f"cannot read {path.name}: {exc.strerror or exc}"
        raise CheckpointError(msg) from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path.name} is not a valid safetensors file (its header is not JSON)"
        raise CheckpointError(msg) from exc
    if not isinstance(header, dict):
        msg = f"{path.name} is not a valid safetensors file (its header is not a JSON object)"
        raise CheckpointError(msg)
    data_bytes = size - 8 - length
    data_end = _data_end(header, path.name)
    if data_end < data_bytes:
        extra = data_bytes - data_end
        msg = f"{path.name} has {extra} bytes after its last tensor; safetensors refuses it"
        raise CheckpointError(msg)
    if data_end > data_bytes:
        msg = (
            f"{path.name} is truncated: its header promises {data_end} bytes of tensors but "
            f"only {data_bytes} follow (an interrupted download or copy?)"
        )
        raise CheckpointError(msg)
    return header


def _data_end(header: Mapping[str, Any], name: str) -> int:
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
        ):
            msg = f"{name} is not a valid safetensors file (tensor {key!r} has no byte range)"
            raise CheckpointError(msg)
        end = max(end, offsets[1])
    return end


def header_keys(path: Path) -> list[str]:
    """The tensor names of a ``.safetensors`` file, in header order (header read only)."""
    return [k for k in read_header(path) if k != "__metadata__"]


def family_from_header(header: Mapping[str, Any]) -> Family | None:
    """The family of a safetensors header: tensor name → ``{"shape": [...], ...}``.

    Also accepts any mapping whose values have a ``shape`` (or no shape at all), so a header
    read from the Hub (``HfApi.parse_safetensors_file_metadata``) can be classified before
    the file is downloaded. ``__metadata__`` (safetensors' string map) is used only when the
    tensor names say nothing.
    """
    keys = [k for k in header if k != "__metadata__"]
    metadata = header.get("__metadata__")
    by_keys = family_from_keys(keys, shape=lambda k: _shape(header.get(k)))
    if by_keys is not None:
        return by_keys
    if isinstance(metadata, dict):
        if "ss_network_module" in metadata:
            return "lora"
        architecture = str(metadata.get("modelspec.architecture", ""))
        if architecture.endswith(("/lora", "/lycoris")):
            return "lora"
        for prefix, family in _ARCHITECTURES:
            if architecture.startswith(prefix):
                return family
    return None


def family_from_keys(
    keys: Iterable[str], shape: Callable[[str], Any] | None = None
) -> Family | None:
    """The family from tensor names alone (``shape(key)`` may refine a bare U-Net)."""
    names = list(keys)
    if any(k.startswith(_LORA_PREFIXES) or any(m in k for m in _LORA_MARKERS) for k in names):
        return "lora"
    if any(k.startswith(_SDXL_PREFIXES) for k in names):
        return "sdxl"
    if any(k.startswith(_SD1_PREFIX) for k in names):
        return "sd15"
    if any(k.startswith(_SD2_PREFIX) for k in names):
        return "sd2"
    if any(k.startswith(_UNET_PREFIX) for k in names):
        if any(k.startswith(_UNET_PREFIX + "label_emb.") for k in names):
            return "sdxl"
        dims = (
            shape(_UNET_CONTEXT_KEY) if shape is not None and _UNET_CONTEXT_KEY in names else None
        )
        if isinstance(dims, list) and len(dims) == 2:
            return _CONTEXT_WIDTH.get(dims[1])
        return None
    vae_only = ("encoder.", "decoder.", "first_stage_model.")
    if names and all(
        k.startswith(vae_only) or k.startswith(("quant_conv.", "post_quant_conv.")) for k in names
    ):
        return "vae"
    return None


def _shape(entry: Any) -> Any:
    if isinstance(entry, dict):
        return entry.get("shape")
    return getattr(entry, "shape", None)


def diffusers_family(folder: Path) -> Family | None:
    """The family of a Diffusers pipeline folder, from ``model_index.json`` and its configs.

    ``StableDiffusionXLPipeline`` is SDXL; ``StableDiffusionPipeline`` is SD1.x unless its
    text encoder is 1024 wide (SD2.x). A folder with only a VAE config is a VAE. Unreadable
    or unknown folders give None.
    """
    index = read_json_object(folder / "model_index.json")
    if index is None:
        if (folder / "model_index.json").exists():
            return None
        config = read_json_object(folder / "config.json")
        if config is not None and config.get("_class_name") == "AutoencoderKL":
            return "vae"
        return None
    name = str(index.get("_class_name", ""))
    if name.startswith("StableDiffusionXL"):
        # The refiner has no first text encoder; sd-scripts cannot train it.
        return "sdxl" if _component(index, "text_encoder") else None
    if not name.startswith("StableDiffusion"):
        return None
    text = read_json_object(folder / "text_encoder" / "config.json") or {}
    unet = read_json_object(folder / "unet" / "config.json") or {}
    width = text.get("hidden_size") or unet.get("cross_attention_dim")
    if width == 1024:
        return "sd2"
    return "sd15"


def _component(index: Mapping[str, Any], name: str) -> bool:
    value = index.get(name)
    return isinstance(value, list) and len(value) == 2 and value[0] is not None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON file holding an object, or None when it is missing, unreadable or not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def detect_family(path: Path) -> Family | None:
    """What ``model.base`` points at: ``sd15``, ``sd2``, ``sdxl``, ``lora``, ``vae`` or None.

    * ``.safetensors`` (any other suffix is tried as safetensors too, and gives None when it
      is not): only the header is read; raises :class:`CheckpointError` if the file is
      corrupt or truncated.
    * a folder: a Diffusers pipeline (see :func:`diffusers_family`).
    * ``.ckpt``/``.pt``/``.pth``/``.bin``: None — pickles cannot be inspected without torch,
      and unpickling would run code; sd-scripts still loads them.

    None means "unknown", not "wrong": the caller should only refuse a known mismatch.
    """
    if path.is_dir():
        return diffusers_family(path)
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES[1:]:
        return None
    if suffix == ".safetensors":
        return family_from_header(read_header(path))
    try:
        return family_from_header(read_header(path))
    except CheckpointError:
        return None


def family_problem(detected: str | None, family: str) -> str | None:
    """Why a model of family ``detected`` cannot be trained as ``model.family = family``.

    None when they agree or nothing is known. The text reads after "model.base is …".
    """
    if detected is None or detected == family:
        return None
    what = _FAMILY_NAMES.get(detected, detected)
    if detected in ("lora", "vae"):
        return f"{what}; point model.base at a full SD1.5 or SDXL checkpoint"
    if detected == "sd2":
        return f"{what}; kohya-plan trains SD1.5 (model.family = 'sd15') and SDXL only"
    return f"{what} but model.family is {family!r}; set model.family = {detected!r}"
