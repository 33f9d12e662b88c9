"""What the kohya_ss GUI's LoRA tab is made of (data only): its fields in order, the values a
fresh GUI holds, its LoRA types and their network_args templates, and how each field reaches
sd-scripts (bmaltais/kohya_ss 45088f04af78, kohya_gui/lora_gui.py and class_*.py)."""

from __future__ import annotations

import re
from typing import Any

# The LoRA tab's fields in `save_configuration`'s order (lora_gui.py L102-445), i.e. the keys of
# a saved JSON (`file_path` is never saved), up to the Flux section; the SD3, HunyuanImage,
# Anima and Lumina sections follow (OTHER_FAMILIES). `train_model` takes them in the same
# order, which is the order the GUI walks `vars()` in to build network_args.
_LORA_TAB_FIELDS = """
    save_as_bool pretrained_model_name_or_path v2 v_parameterization sdxl flux1_checkbox
    dataset_config save_model_as save_precision train_data_dir output_name model_list
    training_comment logging_dir reg_data_dir output_dir max_resolution learning_rate
    lr_scheduler lr_warmup lr_warmup_steps train_batch_size epoch save_every_n_epochs seed
    cache_latents cache_latents_to_disk train_inpainting caption_extension enable_bucket
    stop_text_encoder_training min_bucket_reso max_bucket_reso max_train_epochs
    max_train_steps lr_scheduler_num_cycles lr_scheduler_power optimizer optimizer_args
    lr_scheduler_args lr_scheduler_type max_grad_norm mixed_precision
    num_cpu_threads_per_process num_processes num_machines multi_gpu gpu_ids
    main_process_port dynamo_backend dynamo_mode dynamo_use_fullgraph dynamo_use_dynamic
    extra_accelerate_launch_args gradient_checkpointing fp8_base fp8_base_unet full_fp16
    highvram lowvram xformers shuffle_caption save_state save_state_on_train_end resume
    prior_loss_weight color_aug flip_aug masked_loss clip_skip gradient_accumulation_steps
    mem_eff_attn max_token_length max_data_loader_n_workers keep_tokens
    persistent_data_loader_workers bucket_no_upscale random_crop bucket_reso_steps
    v_pred_like_loss caption_dropout_every_n_epochs caption_dropout_rate noise_offset_type
    noise_offset noise_offset_random_strength adaptive_noise_scale multires_noise_iterations
    multires_noise_discount ip_noise_gamma ip_noise_gamma_random_strength
    additional_parameters loss_type huber_schedule huber_c huber_scale vae_batch_size
    min_snr_gamma save_every_n_steps save_last_n_steps save_last_n_steps_state
    save_last_n_epochs save_last_n_epochs_state skip_cache_check log_with wandb_api_key
    wandb_run_name log_tracker_name log_tracker_config log_config
    scale_v_pred_loss_like_noise_pred full_bf16 min_timestep max_timestep vae
    weighted_captions debiased_estimation_loss sdxl_cache_text_encoder_outputs
    sdxl_no_half_vae text_encoder_lr t5xxl_lr unet_lr network_dim network_weights
    dim_from_weights network_alpha LoRA_type factor bypass_mode dora_wd use_cp use_tucker
    use_scalar rank_dropout_scale constrain rescaled train_norm decompose_both
    train_on_input conv_dim conv_alpha sample_every_n_steps sample_every_n_epochs
    sample_sampler sample_prompts down_lr_weight mid_lr_weight up_lr_weight
    block_lr_zero_threshold block_dims block_alphas conv_block_dims conv_block_alphas unit
    scale_weight_norms network_dropout rank_dropout module_dropout LyCORIS_preset
    loraplus_lr_ratio loraplus_text_encoder_lr_ratio loraplus_unet_lr_ratio train_lora_ggpo
    ggpo_sigma ggpo_beta huggingface_repo_id huggingface_token huggingface_repo_type
    huggingface_repo_visibility huggingface_path_in_repo save_state_to_huggingface
    resume_from_huggingface async_upload metadata_author metadata_description
    metadata_license metadata_tags metadata_title flux1_cache_text_encoder_outputs
    flux1_cache_text_encoder_outputs_to_disk model_type ae clip_l t5xxl discrete_flow_shift
    model_prediction_type timestep_sampling split_mode train_blocks t5xxl_max_token_length
    enable_all_linear guidance_scale mem_eff_save apply_t5_attn_mask split_qkv train_t5xxl
    cpu_offload_checkpointing blocks_to_swap single_blocks_to_swap double_blocks_to_swap
    show_timesteps show_timesteps_resolution img_attn_dim img_mlp_dim img_mod_dim single_dim
    txt_attn_dim txt_mlp_dim txt_mod_dim single_mod_dim in_dims train_double_block_indices
    train_single_block_indices
"""

LORA_TAB_KEYS: tuple[str, ...] = tuple(_LORA_TAB_FIELDS.split())

# Fields of model families kohya-plan does not plan (their section of save_configuration).
OTHER_FAMILIES: dict[str, tuple[str, str]] = {
    "sd3_checkbox": ("SD3", "sd3_"),
    "hunyuan_image_checkbox": ("HunyuanImage-2.1", "hunyuan_"),
    "anima_checkbox": ("Anima", "anima_"),
    "lumina_checkbox": ("Lumina", "lumina_"),
}

SD3_FIELDS = [
    "clip_g",
    "clip_g_dropout_rate",
    "logit_mean",
    "logit_std",
    "mode_scale",
    "pos_emb_random_crop_rate",
    "save_clip",
    "save_t5xxl",
    "t5xxl_device",
    "t5xxl_dtype",
    "weighting_scheme",
]

FLUX_FIELDS = frozenset(LORA_TAB_KEYS[LORA_TAB_KEYS.index("flux1_cache_text_encoder_outputs") :])

# What a freshly started GUI's form holds (kohya_gui/class_*.py `config.get(..., default)` and
# the LoRA tab's components in lora_gui.py `lora_tab`). Only values that reach sd-scripts
# matter; paths and the model are left to placeholders instead of the GUI's sample values.
GUI_DEFAULTS: dict[str, Any] = {
    "LoRA_type": "Standard",
    "LyCORIS_preset": "full",
    "save_model_as": "safetensors",
    "save_precision": "fp16",
    "output_name": "last",
    "max_resolution": "512,512",
    "learning_rate": 0.0001,  # BasicTraining(learning_rate_value=0.0001) in lora_tab
    "lr_scheduler": "cosine",
    "lr_warmup": 10,
    "lr_warmup_steps": 0,
    "train_batch_size": 1,
    "epoch": 1,
    "save_every_n_epochs": 1,
    "seed": 0,
    "cache_latents": True,
    "caption_extension": ".txt",
    "enable_bucket": True,
    "min_bucket_reso": 256,
    "max_bucket_reso": 2048,
    "max_train_epochs": 0,
    "max_train_steps": 1600,
    "lr_scheduler_num_cycles": 1,
    "lr_scheduler_power": 1.0,
    "optimizer": "AdamW8bit",
    "max_grad_norm": 1.0,
    "mixed_precision": "fp16",
    "num_cpu_threads_per_process": 2,
    "num_processes": 1,
    "num_machines": 1,
    "main_process_port": 0,
    "dynamo_backend": "no",
    "dynamo_mode": "default",
    "xformers": "xformers",
    "prior_loss_weight": 1.0,
    "clip_skip": 1,
    "gradient_accumulation_steps": 1,
    "max_token_length": 75,
    "max_data_loader_n_workers": 0,
    "keep_tokens": 0,
    "bucket_no_upscale": True,
    "bucket_reso_steps": 64,
    "noise_offset_type": "Original",
    "noise_offset": 0,
    "multires_noise_discount": 0.3,
    "loss_type": "l2",
    "huber_schedule": "snr",
    "huber_c": 0.1,
    "huber_scale": 1.0,
    "max_timestep": 1000,
    "text_encoder_lr": 0.0001,  # DEFAULT_TEXT_ENCODER_LR
    "t5xxl_lr": 0,
    "unet_lr": 0.0001,  # DEFAULT_UNET_LR
    "network_dim": 8,
    "network_alpha": 1,
    "factor": -1,
    "constrain": 0.0,
    "train_on_input": True,
    "conv_dim": 1,
    "conv_alpha": 1,
    "unit": 1,
    "ggpo_sigma": 0.03,
    "ggpo_beta": 0.01,
    "sample_sampler": "euler_a",
    "model_type": "flux",
    "discrete_flow_shift": 3.0,
    "model_prediction_type": "sigma_scaled",
    "timestep_sampling": "sigma",
    "train_blocks": "all",
    "t5xxl_max_token_length": 512,
    "guidance_scale": 3.5,
    "show_timesteps_resolution": "1024",
    # Checkboxes and sliders of the LoRA tab that the network_args templates print.
    **dict.fromkeys(
        (
            "bypass_mode",
            "dora_wd",
            "use_cp",
            "use_tucker",
            "use_scalar",
            "rank_dropout_scale",
            "rescaled",
            "train_norm",
            "decompose_both",
            "dim_from_weights",
            "train_lora_ggpo",
        ),
        False,
    ),
    "scale_weight_norms": 0,
    "network_dropout": 0,
    "rank_dropout": 0,
    "module_dropout": 0.0,
}

# Sample text of the GUI's presets where a path belongs ("put the full path to ... here").
INSTRUCTION = re.compile(r"^\s*put\b.*\bhere\b", re.IGNORECASE)

# LoRA_type → (network_module, the GUI's network_args template), lora_gui.py L1821-1855.
# The templates are the GUI's f-strings, with {field} for each LoRA-tab field.
LYCORIS_ARGS: dict[str, str] = {
    "LyCORIS/BOFT": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "module_dropout={module_dropout} use_tucker={use_tucker} rank_dropout={rank_dropout} "
    "rank_dropout_scale={rank_dropout_scale} algo=boft train_norm={train_norm}",
    "LyCORIS/Diag-OFT": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "module_dropout={module_dropout} use_tucker={use_tucker} rank_dropout={rank_dropout} "
    "rank_dropout_scale={rank_dropout_scale} constraint={constrain} rescaled={rescaled} "
    "algo=diag-oft train_norm={train_norm}",
    "LyCORIS/DyLoRA": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "use_tucker={use_tucker} block_size={unit} rank_dropout={rank_dropout} "
    'module_dropout={module_dropout} algo="dylora" train_norm={train_norm}',
    "LyCORIS/GLoRA": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "use_tucker={use_tucker} rank_dropout={rank_dropout} module_dropout={module_dropout} "
    'rank_dropout_scale={rank_dropout_scale} algo="glora" train_norm={train_norm}',
    "LyCORIS/iA3": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "train_on_input={train_on_input} algo=ia3",
    "LyCORIS/LoCon": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "use_tucker={use_tucker} rank_dropout={rank_dropout} bypass_mode={bypass_mode} "
    "dora_wd={dora_wd} module_dropout={module_dropout} use_tucker={use_tucker} "
    "use_scalar={use_scalar} rank_dropout_scale={rank_dropout_scale} algo=locon "
    "train_norm={train_norm}",
    "LyCORIS/LoHa": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "use_tucker={use_tucker} rank_dropout={rank_dropout} bypass_mode={bypass_mode} "
    "dora_wd={dora_wd} module_dropout={module_dropout} use_tucker={use_tucker} "
    "use_scalar={use_scalar} rank_dropout_scale={rank_dropout_scale} algo=loha "
    "train_norm={train_norm}",
    "LyCORIS/LoKr": "preset={LyCORIS_preset} conv_dim={conv_dim} conv_alpha={conv_alpha} "
    "use_tucker={use_tucker} rank_dropout={rank_dropout} bypass_mode={bypass_mode} "
    "dora_wd={dora_wd} module_dropout={module_dropout} factor={factor} use_cp={use_cp} "
    "use_scalar={use_scalar} decompose_both={decompose_both} "
    "rank_dropout_scale={rank_dropout_scale} algo=lokr train_norm={train_norm}",
    "LyCORIS/Native Fine-Tuning": "preset={LyCORIS_preset} rank_dropout={rank_dropout} "
    "module_dropout={module_dropout} rank_dropout_scale={rank_dropout_scale} algo=full "
    "train_norm={train_norm}",
}

BLOCK_FIELDS = (
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
    "rank_dropout",
    "module_dropout",
)

FLUX_NET_FIELDS = (
    "img_attn_dim",
    "img_mlp_dim",
    "img_mod_dim",
    "single_dim",
    "txt_attn_dim",
    "txt_mlp_dim",
    "txt_mod_dim",
    "single_mod_dim",
    "in_dims",
    "train_double_block_indices",
    "train_single_block_indices",
)

LORA_TYPES = frozenset(
    {
        *LYCORIS_ARGS,
        "LoCon",
        "Standard",
        "Kohya LoCon",
        "Kohya DyLoRA",
        "Kohya LoHa",
        "Kohya LoKr",
        "LoRA-FA",
        "Flux1",
        "Flux1 OFT",
        "Anima",
        "Lumina",
        "HunyuanImage-2.1",
    }
)

# Keys the GUI keeps for itself.
GUI_ONLY: dict[str, str] = {
    "save_as_bool": "the GUI's own Save/Save-as switch",
    "model_list": "the GUI's model menu (pretrained_model_name_or_path names the model)",
    "training_preset": "the GUI's preset menu",
    "lowvram": "the GUI does not pass it (sd-scripts has no --lowvram)",
    "noise_offset_type": "the GUI's switch between the Original and Multires noise options",
    "huggingface_token": "a secret: kohya-plan never writes tokens into a plan (use HF_TOKEN)",
    "wandb_api_key": "a secret: kohya-plan never writes it into a plan (use WANDB_API_KEY)",
    "stop_text_encoder_training": "the GUI ignores it ('not yet supported', L1600-1605)",
    "dynamo_mode": "accelerate's dynamo is off (kohya-plan launches with --dynamo_backend no)",
    "dynamo_use_fullgraph": "accelerate's dynamo is off (kohya-plan launches with "
    "--dynamo_backend no)",
    "dynamo_use_dynamic": "accelerate's dynamo is off (kohya-plan launches with "
    "--dynamo_backend no)",
    "train_lora_ggpo": "the GUI's switch for the ggpo_* network arguments",
}

# Keys older GUI versions wrote that `update_my_data` (common_gui.py L379-509) migrates.
MIGRATED = {
    "use_8bit_adam": "optimizer",
    "lora_network_weights": "network_weights",
    "use_wandb": "log_with",
}

SETTINGS = re.compile(r"^(\S+=\S+)( \S+=\S+)*$|^$")  # common_gui.py validate_args_setting

# Fields the GUI writes into its config under the same name (config_toml_data, L2147-2556),
# with the gate some of them have.
_SAME_NAME_FIELDS = """
    async_upload bucket_no_upscale bucket_reso_steps cache_latents cache_latents_to_disk
    caption_dropout_rate caption_extension color_aug dataset_config debiased_estimation_loss
    dim_from_weights enable_bucket flip_aug fp8_base full_bf16 full_fp16
    gradient_checkpointing highvram huber_c huber_scale huber_schedule huggingface_repo_id
    huggingface_repo_type huggingface_repo_visibility huggingface_path_in_repo
    ip_noise_gamma_random_strength logging_dir log_config log_tracker_name
    log_tracker_config loss_type lr_scheduler lr_scheduler_power masked_loss max_bucket_reso
    max_grad_norm mem_eff_attn metadata_author metadata_description metadata_license
    metadata_tags metadata_title mixed_precision network_alpha network_dim network_dropout
    network_weights output_dir output_name pretrained_model_name_or_path prior_loss_weight
    random_crop reg_data_dir resume resume_from_huggingface sample_sampler save_model_as
    save_precision save_state save_state_on_train_end save_state_to_huggingface
    scale_v_pred_loss_like_noise_pred scale_weight_norms shuffle_caption skip_cache_check
    train_batch_size train_data_dir training_comment log_with v_parameterization
    weighted_captions
"""

SAME_NAME = tuple(_SAME_NAME_FIELDS.split())

# Same name, but passed only when not 0.
_NONZERO_FIELDS = """
    ip_noise_gamma max_timestep min_snr_gamma min_timestep sample_every_n_epochs
    sample_every_n_steps save_every_n_epochs save_every_n_steps save_last_n_steps
    save_last_n_steps_state save_last_n_epochs save_last_n_epochs_state v_pred_like_loss
    vae_batch_size
"""

NONZERO = tuple(_NONZERO_FIELDS.split())

INTS = (
    "caption_dropout_every_n_epochs",
    "gradient_accumulation_steps",
    "keep_tokens",
    "min_bucket_reso",
)
