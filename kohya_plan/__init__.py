"""kohya-plan: a validated TOML plan in, the exact kohya-ss/sd-scripts LoRA command out."""

__version__ = "0.1.0"
