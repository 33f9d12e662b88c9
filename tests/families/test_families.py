"""The model families (kohya_plan/families): what each declares, how a plan of each family
validates, renders and is checked — pure: plans and hand-made facts, no sd-scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    base_plan,
    flux_stub_files,
    make_images,
    ready_tokenizers,
    write_plan,
    write_sdxl_diffusers,
)

from kohya_plan.checks import run_checks
from kohya_plan.errors import PlanError
from kohya_plan.families import FAMILIES, family
from kohya_plan.families.flux import max_blocks_to_swap, swap_split
from kohya_plan.inputs.facts import Facts
from kohya_plan.loading import loads_toml, validate_plan
from kohya_plan.lora import lora_counts, lora_file_bytes, lora_parameters
from kohya_plan.options import OPTION_FOR, options_for

FLUX_FILES = {
    "ae": "models/ae.safetensors",
    "clip_l": "models/clip_l.safetensors",
    "t5xxl": "models/t5xxl.safetensors",
}


def _data(family_name: str = "sd15", **sections: dict[str, Any]) -> dict[str, Any]:
    model: dict[str, Any] = {"family": family_name}
    if family_name != "sd15":
        model["clip_skip"] = None
    if family_name == "flux":
        model |= {"base": "models/dit.safetensors", **FLUX_FILES}
    model |= sections.pop("model", {})
    data = base_plan(model=model, **sections)
    data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    if family_name == "flux":
        data.setdefault("network", {}).setdefault("module", "networks.lora_flux")
    return data


def _plan(family_name: str = "sd15", **sections: dict[str, Any]) -> Any:
    return validate_plan(_data(family_name, **sections), Path("/plans"))


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as info:
        validate_plan(data, Path("/plans"))
    return [str(f) for f in info.value.findings]


def _facts(plan: Any) -> Facts:
    if plan.model.family == "flux":
        return Facts("file", "/plans/models/dit.safetensors")
    return Facts("hub", plan.model.base)


def _ids(plan: Any, facts: Facts | None = None) -> list[str]:
    return [f.id for f in run_checks(plan, facts or _facts(plan))]


def _finding(plan: Any, rule: str, facts: Facts | None = None) -> Any:
    (found,) = [f for f in run_checks(plan, facts or _facts(plan)) if f.id == rule]
    return found


# --- what each family declares --------------------------------------------------------------


def test_the_registry() -> None:
    assert list(FAMILIES) == ["sd15", "sdxl", "flux"]
    assert family("sdxl").script == "sdxl_train_network.py"
    with pytest.raises(KeyError, match="use one of: sd15, sdxl, flux"):
        family("sd3")


@pytest.mark.parametrize(
    ("name", "step", "tokenizers", "suffix"),
    [
        ("sd15", 64, ["openai_clip-vit-large-patch14"], "_sd.npz"),
        (
            "sdxl",
            32,
            ["openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"],
            "_sdxl.npz",
        ),
        ("flux", 64, ["openai_clip-vit-large-patch14", "google_t5-v1_1-xxl"], "_flux.npz"),
    ],
)
def test_family_declarations(name: str, step: int, tokenizers: list[str], suffix: str) -> None:
    fam = family(name)
    assert fam.bucket_step == step
    assert [t.folder for t in fam.tokenizers] == tokenizers
    assert fam.latent_cache_suffix == suffix
    assert fam.script in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py")
    # every option a family ignores or refuses is one of its script's
    for option in (*fam.ignored_options, *fam.refused_options):
        assert option in options_for(fam.script), (name, option)


def test_every_plan_key_maps_to_exactly_one_option_of_a_family_script() -> None:
    every = set().union(*(options_for(f.script) for f in FAMILIES.values()))
    assert set(OPTION_FOR.values()) <= every
    options = list(OPTION_FOR.values())
    assert len(options) == len(set(options)), "two plan keys for one option"


def test_flux_block_swap_bounds_are_sd_scripts_own() -> None:
    # flux_models.enable_block_swap: N//2 double, (N - N//2)*2 single, at most (count - 2) each
    assert swap_split(16) == (8, 16)
    assert swap_split(35) == (17, 36)
    assert max_blocks_to_swap(19, 38) == 35  # the docs: "FLUX.1 supports up to 35 blocks"
    assert max_blocks_to_swap(1, 1) == 0


# --- LoRA parameters per rank (scripts/lora_params_per_rank.py measured them) ---------------


@pytest.mark.parametrize(
    ("name", "network", "per_rank", "modules"),
    [
        ("sd15", {}, 589_824, 264),
        ("sd15", {"train_unet_only": True}, 423_936, 192),
        ("sdxl", {}, 2_659_840 + 165_888 + 737_280, 722 + 72 + 192),
        ("sdxl", {"train_unet_only": True}, 2_659_840, 722),
        ("sdxl", {"train_text_encoder_only": True}, 165_888 + 737_280, 72 + 192),
        ("flux", {"train_unet_only": True}, 4_786_176, 304),
        ("flux", {}, 4_786_176 + 165_888, 304 + 72),
        ("flux", {"args": {"train_t5xxl": True}}, 4_786_176 + 165_888 + 1_818_624, 304 + 72 + 168),
        ("flux", {"train_unet_only": True, "args": {"train_blocks": "single"}}, 38 * 55_296, 114),
    ],
)
def test_lora_counts(name: str, network: dict[str, Any], per_rank: int, modules: int) -> None:
    plan = _plan(name, network={"dim": 16, "alpha": 8, **network})
    assert lora_counts(plan) == (modules, per_rank)
    assert lora_parameters(plan) == per_rank * 16
    assert lora_file_bytes(plan) == (per_rank * 16 + modules) * 2


def test_lora_counts_follow_the_checkpoint() -> None:
    plan = _plan("flux", network={"dim": 4, "alpha": 2, "train_unet_only": True})
    # the lab's DiT: 1 double + 1 single block (tests/fixtures/logs/families: 1,580,874 B)
    shape = {"dit.double": 1, "dit.single": 1}
    assert lora_counts(plan, shape) == (13, 141_312 + 55_296)
    assert lora_file_bytes(plan, shape) == (196_608 * 4 + 13) * 2
    sdxl = _plan("sdxl", network={"dim": 8, "alpha": 4})
    # the lab's SDXL: TE1 11 layers of width 768/768, TE2 2 layers of 1280/5120
    tiny = {"te1.layers": 11, "te1.layers:params": 9_216, "te2.layers": 2}
    assert lora_counts(sdxl, tiny) == (722 + 66 + 12, 2_659_840 + 11 * 9_216 + 2 * 23_040)


# --- the schema: what a plan of each family may set ------------------------------------------


def test_a_flux_plan_needs_its_model_files_and_gets_the_docs_defaults() -> None:
    data = _data("flux")
    del data["model"]["ae"]
    problems = _problems(data)
    assert any(p.startswith("model.ae: a FLUX.1 plan needs the AutoEncoder") for p in problems)
    assert any("black-forest-labs/FLUX.1-dev/ae.safetensors" in p for p in problems)
    plan = _plan("flux")
    assert plan.flux is not None
    assert (plan.flux.guidance_scale, plan.flux.model_prediction_type) == (1.0, "raw")
    assert plan.flux.timestep_sampling == "flux_shift"
    assert plan.script_name == "flux_train_network.py"


def test_chroma_needs_no_clip_l() -> None:
    data = _data("flux", flux={"model_type": "chroma", "apply_t5_attn_mask": True})
    del data["model"]["clip_l"]
    plan = validate_plan(data, Path("/plans"))
    assert plan.flux is not None
    assert plan.flux.model_type == "chroma"


@pytest.mark.parametrize(
    ("family_name", "sections", "field", "words"),
    [
        ("sd15", {"model": {"ae": "ae.safetensors"}}, "model.ae", "train_network.py has no --ae"),
        (
            "sd15",
            {"training": {"cache_text_encoder_outputs": True}},
            "training.cache_text_encoder_outputs",
            "set model.family = 'sdxl' if that is the model",
        ),
        ("sdxl", {"flux": {"guidance_scale": 1.0}}, "flux", "[flux] section is for FLUX.1"),
        (
            "sdxl",
            {"launch": {"extra": {"guidance_scale": 1.0}}},
            "launch.extra.guidance_scale",
            "it is an option of flux_train_network.py",
        ),
        (
            "sdxl",
            {"launch": {"extra": {"cache_text_encoder_outputs": True}}},
            "launch.extra.cache_text_encoder_outputs",
            "set training.cache_text_encoder_outputs instead",
        ),
        ("sdxl", {"launch": {"extra": {"v2": True}}}, "launch.extra.v2", "asserts v2 is off"),
        (
            "flux",
            {"model": {"v_parameterization": True}},
            "model.v_parameterization",
            "flow matching",
        ),
        (
            "flux",
            {"launch": {"extra": {"max_token_length": 150}}},
            "launch.extra.max_token_length",
            "flux.t5xxl_max_token_length",
        ),
        ("flux", {"launch": {"extra": {"noise_offsett": 0.1}}}, "launch.extra", "noise_offset"),
    ],
)
def test_keys_the_family_script_cannot_take(
    family_name: str, sections: dict[str, Any], field: str, words: str
) -> None:
    data = _data(family_name)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    problems = _problems(data)
    assert any(p.startswith(field) and words in p for p in problems), problems


def test_sdxl_takes_its_own_options() -> None:
    plan = _plan(
        "sdxl",
        network={"train_unet_only": True},
        training={"cache_text_encoder_outputs": True, "no_half_vae": True},
        launch={"extra": {"disable_mmap_load_safetensors": True}},  # an SDXL-only option
    )
    assert plan.training.cache_text_encoder_outputs


def test_an_unknown_family_is_refused_with_the_known_ones() -> None:
    problems = _problems(base_plan(model={"family": "fluxx"}))
    assert any('did you mean "flux"?' in p and "sd15, sdxl, flux" in p for p in problems)


# --- rendering: what takes effect ----------------------------------------------------------


def _config(tmp_path: Path, run_cli: Any, data: dict[str, Any]) -> dict[str, Any]:
    make_images(tmp_path / "data" / "5_sks", [(512, 512)] * 3)
    fam = data["model"].get("family", "sd15")
    if fam == "flux":
        flux_stub_files(tmp_path / "models")
        (tmp_path / "models" / "dit.safetensors").exists()
    data["model"]["tokenizer_cache_dir"] = str(ready_tokenizers(tmp_path / "tok", fam))
    plan = write_plan(tmp_path, data)
    made = run_cli("make", plan, "--dry-run", "--json")
    assert made.exit_code == 0, made.output
    config: dict[str, Any] = {}
    for values in loads_toml(json.loads(made.stdout)["files"]["config.toml"]).values():
        config.update(values)
    return config


def test_flux_renders_both_text_encoder_lrs_and_its_options(tmp_path: Path, run_cli: Any) -> None:
    data = _data(
        "flux",
        optimizer={"unet_lr": 1e-4, "text_encoder_lr": [5e-5, 2e-5]},
        network={"args": {"train_t5xxl": True}},
        flux={"timestep_sampling": "sigmoid", "discrete_flow_shift": 3.1582},
        rules={"allow": ["te-lr-ratio"]},
    )
    config = _config(tmp_path, run_cli, data)
    assert config["text_encoder_lr"] == [5e-5, 2e-5]  # lora_flux: [CLIP-L, T5-XXL]
    assert config["guidance_scale"] == 1.0
    assert config["model_prediction_type"] == "raw"
    assert config["ae"] == str(tmp_path / "models" / "ae.safetensors")
    assert "discrete_flow_shift" not in config  # sigmoid sampling never reads it
    assert config["sigmoid_scale"] == 1.0


def test_sdxl_renders_one_text_encoder_lr_and_leaves_clip_skip_out(
    tmp_path: Path, run_cli: Any
) -> None:
    data = _data(
        "sdxl",
        optimizer={"unet_lr": 1e-4, "text_encoder_lr": [5e-5, 5e-5]},
        training={"mixed_precision": "bf16"},
    )
    data["model"]["clip_skip"] = 2
    data["model"]["base"] = str(tmp_path / "sdxl")
    write_sdxl_diffusers(tmp_path / "sdxl")
    config = _config(tmp_path, run_cli, data)
    assert config["text_encoder_lr"] == [5e-5]
    assert "clip_skip" not in config


# --- the rules ------------------------------------------------------------------------------


def test_networks_lora_takes_one_text_encoder_lr() -> None:
    plan = _plan("sdxl", optimizer={"unet_lr": 1e-4, "text_encoder_lr": [4e-5, 2e-5]})
    found = _finding(plan, "te-lr-list")
    assert "keeps only the first value (4e-05)" in found.message
    assert found.blocking
    sd15 = _plan("sd15", optimizer={"unet_lr": 1e-4, "text_encoder_lr": [4e-5, 2e-5]})
    assert "SD1.5 has one text encoder" in _finding(sd15, "te-lr-list").message


def test_te_ratio_applies_to_each_trained_text_encoder() -> None:
    args = {"train_t5xxl": True}
    plan = _plan(
        "flux",
        network={"args": args},
        optimizer={"unet_lr": 1e-4, "text_encoder_lr": [5e-5, 1e-4]},
    )
    found = _finding(plan, "te-lr-ratio")
    assert "(T5-XXL) 0.0001 is 1×" in found.message
    no_t5 = _plan("flux", optimizer={"unet_lr": 1e-4, "text_encoder_lr": [5e-5, 1e-4]})
    assert "te-lr-ratio" not in _ids(no_t5)
    assert "train_t5xxl = true is not set" in _finding(no_t5, "te-lr-unused").message


@pytest.mark.parametrize(
    ("family_name", "step", "flagged", "words"),
    [
        ("sdxl", 32, False, ""),
        ("sdxl", 16, True, "sdxl_train_network.py asserts bucket_reso_steps is divisible by 32"),
        ("flux", 32, True, "effectively 64"),
        ("sd15", 32, True, "divisible by 64"),
    ],
)
def test_bucket_step_per_family(family_name: str, step: int, flagged: bool, words: str) -> None:
    plan = _plan(family_name, dataset={"bucket_reso_steps": step})
    ids = _ids(plan)
    assert ("bucket-steps" in ids) is flagged
    if flagged:
        assert words in _finding(plan, "bucket-steps").message


def test_text_encoder_caching_rules() -> None:
    cached = {"cache_text_encoder_outputs": True}
    trained = _plan("sdxl", training=cached)
    assert "te-cache-trained" in _ids(trained)
    frozen = _plan("sdxl", training=cached, network={"train_unet_only": True})
    assert "te-cache-trained" not in _ids(frozen)
    shuffled = _plan(
        "sdxl",
        training=cached,
        network={"train_unet_only": True},
        dataset={"shuffle_caption": True},
        launch={"extra": {"caption_tag_dropout_rate": 0.1}},
    )
    found = _finding(shuffled, "te-cache-augment")
    assert "dataset.shuffle_caption" in found.message
    assert "launch.extra.caption_tag_dropout_rate" in found.message
    # FLUX.1 caches T5 while CLIP-L trains (partial caching); a trained T5 cannot be cached
    flux = _plan("flux", training=cached)
    assert "te-cache-trained" not in _ids(flux)
    t5 = _plan("flux", training=cached, network={"args": {"train_t5xxl": True}})
    assert "te-cache-trained" in _ids(t5)


@pytest.mark.parametrize(
    ("training", "rule"),
    [
        ({"full_fp16": True, "mixed_precision": "bf16"}, "full-precision"),
        ({"full_bf16": True, "mixed_precision": "fp16"}, "full-precision"),
        ({"fp8_base": True, "mixed_precision": "no"}, "fp8-base-precision"),
    ],
)
def test_precision_switches(training: dict[str, Any], rule: str) -> None:
    assert rule in _ids(_plan("sdxl", training=training))


def test_sdxl_vae_in_fp16() -> None:
    plan = _plan("sdxl", training={"mixed_precision": "fp16"})
    found = _finding(plan, "sdxl-half-vae")
    assert "training.no_half_vae = true" in found.fix
    assert "sdxl-half-vae" not in _ids(
        _plan("sdxl", training={"mixed_precision": "fp16", "no_half_vae": True})
    )
    fixed = _plan(
        "sdxl", model={"vae": "madebyollin/sdxl-vae-fp16-fix"}, training={"mixed_precision": "fp16"}
    )
    assert "sdxl-half-vae" not in _ids(fixed)
    assert "sdxl-half-vae" not in _ids(_plan("sd15", training={"mixed_precision": "fp16"}))


def test_flux_blocks_to_swap_bounds_follow_the_dit() -> None:
    full = Facts("file", "/m/dit.safetensors")
    assert "flux-blocks-to-swap" not in _ids(_plan("flux", flux={"blocks_to_swap": 35}), full)
    found = _finding(_plan("flux", flux={"blocks_to_swap": 36}), "flux-blocks-to-swap", full)
    assert "at most 35" in found.fix
    tiny = Facts("file", "/m/dit.safetensors", model_shape={"dit.double": 1, "dit.single": 1})
    found = _finding(_plan("flux", flux={"blocks_to_swap": 2}), "flux-blocks-to-swap", tiny)
    assert "has 1 and 1" in found.message
    both = _plan("flux", flux={"blocks_to_swap": 16, "cpu_offload_checkpointing": True})
    assert "flux-swap-offload" in _ids(both)


def test_flux_advice() -> None:
    assert "flux-fp32" in _ids(_plan("flux", training={"mixed_precision": "no"}))
    assert "flux-guidance" in _ids(_plan("flux", flux={"guidance_scale": 3.5}))
    schnell = Facts("file", "/m/dit.safetensors", model_shape={"dit.guidance": 0})
    assert "flux-guidance" not in _ids(_plan("flux", flux={"guidance_scale": 3.5}), schnell)
    chroma = _plan("flux", flux={"model_type": "chroma", "guidance_scale": 0.0})
    assert "flux-chroma" in _ids(chroma)  # no T5 attention mask


def test_network_module_must_fit_the_family() -> None:
    found = _finding(_plan("flux", network={"module": "networks.lora"}), "network-module-family")
    assert found.blocking
    assert 'network.module = "networks.lora_flux"' in found.fix
    found = _finding(
        _plan("sdxl", network={"module": "networks.lora_flux"}), "network-module-family"
    )
    assert "built for FLUX.1" in found.message
    assert "network-module-unknown" in _ids(_plan("flux", network={"module": "lycoris.kohya"}))
    assert "network-module-unknown" not in _ids(_plan("sdxl", network={"module": "lycoris.kohya"}))


def test_options_a_family_ignores_are_said_and_not_rendered() -> None:
    plan = _plan("sdxl", model={"clip_skip": 2})
    found = _finding(plan, "option-ignored")
    assert found.field == "model.clip_skip"
    assert "hidden_states[11]" in found.message
    assert "clip-skip-style" not in _ids(plan)
    flux = _plan("flux", sampling={"sampler": "ddim"})
    assert _finding(flux, "option-ignored").field == "sampling.sampler"
