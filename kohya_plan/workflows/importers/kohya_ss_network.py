"""LoRA_type → sd-scripts' network module and network_args, as lora_gui.py builds them
(L1819-2068 of commit 45088f04af78): Standard, Kohya LoCon/LoHa/LoKr/DyLoRA, LoRA-FA, the LyCORIS
types through lycoris.kohya with algo=, and Flux1 through networks.lora_flux."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kohya_plan.workflows.importers.kohya_ss_fields import (
    BLOCK_FIELDS,
    FLUX_NET_FIELDS,
    LORA_TAB_KEYS,
    LYCORIS_ARGS,
)
from kohya_plan.workflows.importers.values import Given

if TYPE_CHECKING:
    from kohya_plan.workflows.importers.kohya_ss_gui import Gui


def network(gui: Gui) -> None:
    """LoRA_type → network_module and network_args (L1819-2068)."""
    lora_type = gui["LoRA_type"]
    pieces: list[tuple[str, str]] = []  # (text, source field)
    if lora_type in LYCORIS_ARGS or lora_type == "LoCon":
        module = "lycoris.kohya"
        template = LYCORIS_ARGS["LyCORIS/LoCon" if lora_type == "LoCon" else lora_type]
        for part in template.split():
            match = re.search(r"\{(\w+)\}", part)
            field = match.group(1) if match else "LoRA_type"
            pieces.append((re.sub(r"\{(\w+)\}", lambda m: _fmt(gui[m.group(1)]), part), field))
    elif lora_type in ("Standard", "Kohya LoCon", "LoRA-FA", "Kohya DyLoRA"):
        module = {
            "Standard": "networks.lora",
            "Kohya LoCon": "networks.lora",
            "LoRA-FA": "networks.lora_fa",
            "Kohya DyLoRA": "networks.dylora",
        }[lora_type]
        if lora_type == "Kohya LoCon":
            pieces += [
                (f'conv_dim="{_fmt(gui["conv_dim"])}"', "conv_dim"),
                (f'conv_alpha="{_fmt(gui["conv_alpha"])}"', "conv_alpha"),
            ]
        fields: tuple[str, ...] = BLOCK_FIELDS
        if lora_type == "Kohya DyLoRA":
            fields = ("conv_dim", "conv_alpha", *BLOCK_FIELDS[:8], "unit", *BLOCK_FIELDS[8:])
        pieces += [(f"{k}={_fmt(gui[k])}", k) for k in _signature_order(fields) if gui[k]]
    elif lora_type in ("Kohya LoHa", "Kohya LoKr"):
        module = "networks.loha" if lora_type == "Kohya LoHa" else "networks.lokr"
        pieces += _native_loha_lokr(gui, lokr=lora_type == "Kohya LoKr")
    elif lora_type == "Flux1":
        module = "networks.lora_flux"
        ggpo = ("ggpo_sigma", "ggpo_beta") if gui["train_lora_ggpo"] else ()
        fields = (*FLUX_NET_FIELDS, *ggpo)
        pieces += [(f"{k}={_fmt(gui[k])}", k) for k in _signature_order(fields) if gui[k]]
        if gui["split_mode"]:
            pieces.append(("train_blocks=single", "split_mode"))
        if gui["split_qkv"]:
            pieces.append(("split_qkv=True", "split_qkv"))
        if gui["train_t5xxl"] and gui["flux1_checkbox"]:
            pieces.append(("train_t5xxl=True", "train_t5xxl"))
        for key in ("rank_dropout", "module_dropout"):
            if float(gui[key] or 0) > 0:
                pieces.append((f"{key}={_fmt(gui[key])}", key))
    else:  # "Flux1 OFT"
        module = "networks.oft_flux"
        if gui["enable_all_linear"]:
            pieces.append(("enable_all_linear=True", "enable_all_linear"))
    for key, name in (
        ("loraplus_lr_ratio", "loraplus_lr_ratio"),
        ("loraplus_unet_lr_ratio", "loraplus_unet_lr_ratio"),
        ("loraplus_text_encoder_lr_ratio", "loraplus_text_encoder_lr_ratio"),
    ):
        if gui[key]:
            pieces.append((f"{name}={_fmt(gui[key])}", key))
    gui.options["network_module"] = gui.given("LoRA_type", module)
    # The GUI joins the pieces, removes every '"' and splits on whitespace (L2338).
    args: list[str] = []
    parts: dict[str, str] = {}
    for text, source in pieces:
        for token in text.replace('"', "").split():
            args.append(token)
            parts.setdefault(token.partition("=")[0], source)
    if args:
        gui.options["network_args"] = Given(
            args, "LoRA_type", gui.given("LoRA_type").default, parts
        )
    used = set(parts.values())
    if "train_blocks" in gui.data and not gui["split_mode"]:
        gui.record(
            "train_blocks",
            "dropped",
            "the GUI passes train_blocks (as single) only with split_mode",
        )
    for key in (
        "LyCORIS_preset",
        "conv_dim",
        "conv_alpha",
        "factor",
        "bypass_mode",
        "dora_wd",
        "use_cp",
        "use_tucker",
        "use_scalar",
        "rank_dropout_scale",
        "constrain",
        "rescaled",
        "train_norm",
        "decompose_both",
        "train_on_input",
        "unit",
        "ggpo_sigma",
        "ggpo_beta",
        *BLOCK_FIELDS,
        *FLUX_NET_FIELDS,
        "split_qkv",
        "train_t5xxl",
        "enable_all_linear",
        "loraplus_lr_ratio",
        "loraplus_unet_lr_ratio",
        "loraplus_text_encoder_lr_ratio",
    ):
        if key not in used and key in gui.data:
            value = gui[key]
            why = (
                "empty or 0: not passed"
                if value in ["", False, None]
                else f"not used by LoRA_type {lora_type!r}"
            )
            gui.record(key, "unset" if value in ["", False, None] else "dropped", why)


def _signature_order(fields: tuple[str, ...]) -> list[str]:
    # The GUI builds these from vars(), i.e. in train_model's parameter order.
    return sorted(fields, key=lambda k: LORA_TAB_KEYS.index(k) if k in LORA_TAB_KEYS else 0)


def _native_loha_lokr(gui: Gui, *, lokr: bool) -> list[tuple[str, str]]:
    """build_native_loha_lokr_network_args (lora_gui.py L1096-1129)."""
    pieces = []
    conv_dim = float(gui["conv_dim"] or 0)
    if conv_dim > 0:
        pieces.append((f"conv_dim={int(conv_dim)}", "conv_dim"))
        alpha = float(gui["conv_alpha"])
        pieces.append((f"conv_alpha={int(alpha) if alpha.is_integer() else alpha}", "conv_alpha"))
    if gui["use_tucker"]:
        pieces.append(("use_tucker=True", "use_tucker"))
    if lokr and int(gui["factor"]) != -1:
        pieces.append((f"factor={int(gui['factor'])}", "factor"))
    for key in ("rank_dropout", "module_dropout"):
        if float(gui[key] or 0) > 0:
            pieces.append((f"{key}={_fmt(gui[key])}", key))
    return pieces


def _fmt(value: Any) -> str:
    """A field as the GUI's f-strings print it."""
    return str(value)
