"""Tell SD1.5, SD2, SDXL and FLUX.1 files apart from their headers, without loading any weights.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header
that names every tensor with its dtype, shape and byte range; only that header is read here
(a few hundred kilobytes even for SDXL), never the tensors. The key prefixes are those of
sd-scripts' single-file loaders (``library/model_util.py``, ``library/sdxl_model_util.py``):

* SD1.x: ``cond_stage_model.transformer.`` (CLIP ViT-L),
* SD2.x: ``cond_stage_model.model.`` (OpenCLIP ViT-H),
* SDXL: ``conditioner.embedders.0.transformer.`` and ``conditioner.embedders.1.model.``,
* FLUX.1 (``library/flux_utils.py`` ``analyze_checkpoint_state``): a DiT has
  ``double_blocks.N.``/``single_blocks.N.`` (BFL) or ``transformer_blocks.N.attn.add_k_proj``
  (Diffusers keys in one file), with ``model.diffusion_model.`` in front or not; dev has
  ``guidance_in.*``; Chroma has ``distilled_guidance_layer.*``. Its other files: the AE (BFL
  keys ``encoder.down.N.``, 16 latent channels: ``encoder.conv_out`` has 32 outputs), CLIP-L
  (``text_model.encoder.layers.N.``, 768 wide) and T5-XXL (``encoder.block.N.``, ``shared``).

A Diffusers folder is recognised by its ``model_index.json``. A pickled ``.ckpt`` cannot be
read without torch (and unpickling runs code), so its family is reported as unknown.
Stdlib only, and fast: ``check`` calls this on every run.
"""

from __future__ import annotations

import json
import re
import struct
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

Family = Literal[
    "sd15",
    "sd2",
    "sdxl",
    "flux",
    "chroma",
    "flux-ae",
    "flux-ae-diffusers",
    "clip-l",
    "t5xxl",
    "t5xxl-scaled",
    "lora",
    "vae",
]
"""What a file holds: a base model of one family, one of FLUX.1's other files, a LoRA, a VAE."""

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
    "flux": "a FLUX.1 model (DiT)",
    "chroma": "a Chroma model (FLUX.1-based DiT)",
    "flux-ae": "the FLUX.1 AutoEncoder",
    "flux-ae-diffusers": "a FLUX.1 AutoEncoder in Diffusers layout",
    "clip-l": "a CLIP-L text encoder",
    "t5xxl": "a T5-XXL text encoder",
    "t5xxl-scaled": "a scaled-fp8 T5-XXL text encoder",
    "lora": "a LoRA (a trained add-on, not a base model)",
    "vae": "a VAE on its own (not a full model)",
}
_FLUX_PARTS = {"flux-ae": "model.ae", "clip-l": "model.clip_l", "t5xxl": "model.t5xxl"}
# flux_utils.analyze_checkpoint_state's own keys
_BFL_DOUBLE = re.compile(r"^(?:model\.diffusion_model\.)?double_blocks\.(\d+)\.")
_BFL_SINGLE = re.compile(r"^(?:model\.diffusion_model\.)?single_blocks\.(\d+)\.")
_DIFFUSERS_DOUBLE = re.compile(r"^(?:model\.diffusion_model\.)?transformer_blocks\.(\d+)\.")
_DIFFUSERS_SINGLE = re.compile(r"^(?:model\.diffusion_model\.)?single_transformer_blocks\.(\d+)\.")
_GUIDANCE = ("guidance_in.", "time_text_embed.guidance_embedder.")
_CLIP_LAYER = re.compile(r"^(?:transformer\.)?text_model\.encoder\.layers\.(\d+)\.")
_T5_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.")


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
    flux = _flux_kind(names, shape)
    if flux is not None:
        return flux
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


def _flux_kind(names: list[str], shape: Callable[[str], Any] | None) -> Family | None:
    """FLUX.1's four files (see the module docstring), or None."""
    bare = [k.removeprefix("model.diffusion_model.") for k in names]
    if any(_BFL_DOUBLE.match(k) for k in names) or any(
        k.startswith("transformer_blocks.") and ".attn.add_k_proj." in k for k in bare
    ):
        return "chroma" if any(k.startswith("distilled_guidance_layer.") for k in bare) else "flux"
    if any(k.startswith("encoder.block.") for k in names) and "shared.weight" in names:
        return "t5xxl-scaled" if "scaled_fp8" in names else "t5xxl"
    if any(_CLIP_LAYER.match(k) for k in names) and not any(
        k.startswith(("cond_stage_model.", "conditioner.")) for k in names
    ):
        width = shape("text_model.final_layer_norm.weight") if shape is not None else None
        return "clip-l" if width in (None, [768]) else None
    if names and all(k.startswith(("encoder.", "decoder.")) for k in names):
        conv_out = shape("encoder.conv_out.weight") if shape is not None else None
        if isinstance(conv_out, list) and conv_out[:1] == [32]:
            layout = any(k.startswith("encoder.down_blocks.") for k in names)
            return "flux-ae-diffusers" if layout else "flux-ae"
    return None


def model_shape(path: Path, kind: str | None) -> dict[str, int]:
    """Block and layer counts of a model, for the LoRA size and FLUX.1's block-swap bounds.

    Keys: ``dit.double``, ``dit.single``, ``dit.guidance`` (1 dev, 0 schnell) for a FLUX.1
    DiT; ``te1.layers``/``te2.layers`` (and ``<key>:params``, LoRA parameters per rank of one
    layer) from a Diffusers folder's text-encoder configs; ``te1.layers`` of a CLIP-L file;
    ``t5.blocks`` (and ``t5.fp8`` for fp8 weights) of a T5-XXL file. Empty when nothing is
    known (full-size counts apply). Headers and configs only; never raises.
    """
    try:
        if path.is_dir():
            return _diffusers_shape(path)
        if kind is None:
            return {}
        header = read_header(path)
    except (CheckpointError, OSError):
        return {}
    keys = [k for k in header if k != "__metadata__"]
    if kind in ("flux", "chroma"):
        return _dit_shape(keys)
    if kind == "clip-l":
        layers = {int(m.group(1)) for k in keys if (m := _CLIP_LAYER.match(k))}
        return {"te1.layers": max(layers) + 1} if layers else {}
    if kind in ("t5xxl", "t5xxl-scaled"):
        blocks = {int(m.group(1)) for k in keys if (m := _T5_BLOCK.match(k))}
        shape = {"t5.blocks": max(blocks) + 1} if blocks else {}
        entry = header.get("shared.weight")
        if isinstance(entry, dict) and str(entry.get("dtype", "")).startswith("F8"):
            shape["t5.fp8"] = 1
        return shape
    return {}


def _dit_shape(keys: list[str]) -> dict[str, int]:
    double = {int(m.group(1)) for k in keys if (m := _BFL_DOUBLE.match(k))}
    single = {int(m.group(1)) for k in keys if (m := _BFL_SINGLE.match(k))}
    if not double:  # Diffusers keys in one file
        double = {int(m.group(1)) for k in keys if (m := _DIFFUSERS_DOUBLE.match(k))}
        single = {int(m.group(1)) for k in keys if (m := _DIFFUSERS_SINGLE.match(k))}
    bare = [k.removeprefix("model.diffusion_model.") for k in keys]
    shape = {"dit.guidance": int(any(k.startswith(_GUIDANCE) for k in bare))}
    if double:
        shape["dit.double"] = max(double) + 1
    if single:
        shape["dit.single"] = max(single) + 1
    return shape


def _diffusers_shape(folder: Path) -> dict[str, int]:
    shape: dict[str, int] = {}
    for key, sub in (("te1.layers", "text_encoder"), ("te2.layers", "text_encoder_2")):
        config = read_json_object(folder / sub / "config.json") or {}
        layers, hidden, inner = (
            config.get(n) for n in ("num_hidden_layers", "hidden_size", "intermediate_size")
        )
        if isinstance(layers, int):
            shape[key] = layers
        if isinstance(hidden, int) and isinstance(inner, int):
            # q, k, v, out (h → h) and fc1/fc2 (h ↔ inner): r·(in + out) each
            shape[f"{key}:params"] = 4 * 2 * hidden + 2 * (hidden + inner)
    return shape


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


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (a WebP image?)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)
# torch.save writes a zip archive (PyTorch >= 1.6) or a pickle (protocol 2+ starts with 0x80).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def not_a_checkpoint(path: Path) -> str | None:
    """What a file given as a model is, when it cannot be a checkpoint (None: it may be one).

    sd-scripts loads ``*.safetensors`` with safetensors and any other file with torch.load, so
    a file must be a safetensors file (see :func:`read_header`) or a torch zip/pickle. An
    image, a text file or an empty file is caught here, before sd-scripts has spent minutes
    starting up. Reads the first bytes only.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None  # read_header reports unreadable files
    if path.suffix.lower() == ".safetensors":
        return None  # read_header says what is wrong with it, if anything
    if not head:
        return "an empty file"
    if head.startswith(_TORCH_MAGIC):
        return None
    try:
        read_header(path)
    except CheckpointError:
        pass
    else:
        return None  # a safetensors file under another name (sd-scripts would torch.load it)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head.startswith(b"PK"):
        return "a ZIP archive that is not a PyTorch checkpoint"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if b"\0" not in head:
            return "a text file"
    return "not a checkpoint (neither safetensors nor a PyTorch file)"


def family_problem(detected: str | None, family: str) -> str | None:
    """Why a model of kind ``detected`` cannot be trained as ``model.family = family``.

    None when they agree or nothing is known. The text reads after "model.base is …".
    """
    from kohya_plan.families import FAMILIES

    own = FAMILIES[family].checkpoint_kinds if family in FAMILIES else (family,)
    if detected is None or detected in own:
        return None
    what = _FAMILY_NAMES.get(detected, detected)
    if detected in ("lora", "vae", "flux-ae-diffusers", "t5xxl-scaled"):
        return f"{what}; point model.base at a full SD1.5, SDXL or FLUX.1 checkpoint"
    if detected in _FLUX_PARTS:
        return (
            f"{what}, one of FLUX.1's other files; set it as {_FLUX_PARTS[detected]} and point "
            "model.base at the FLUX.1 DiT"
        )
    if detected == "sd2":
        return f"{what}; kohya-plan trains SD1.5 (model.family = 'sd15'), SDXL and FLUX.1 only"
    owner = next((f.name for f in FAMILIES.values() if detected in f.checkpoint_kinds), detected)
    return f"{what} but model.family is {family!r}; set model.family = {owner!r}"


def file_problem(detected: str | None, kind: str, what: str) -> str | None:
    """Why a file holding ``detected`` cannot serve as ``what`` (kind ``kind``); None if fine."""
    if detected is None or detected == kind:
        return None
    if detected == "t5xxl-scaled":
        return (
            "a scaled-fp8 T5-XXL (t5xxl_fp8_e4m3fn_scaled), which sd-scripts does not load; "
            "use t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors"
        )
    if detected == "flux-ae-diffusers":
        return (
            "a FLUX.1 AutoEncoder in Diffusers layout, whose keys sd-scripts' AE loader does "
            "not read; use the BFL file ae.safetensors"
        )
    found = _FAMILY_NAMES.get(detected, detected)
    return f"{found}, not {what}"
