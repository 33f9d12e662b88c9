"""Every shipped template and example validates; `init` writes one and never overwrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO, make_images, ready_tokenizers, trainer_script

from kohya_plan.families import FAMILIES
from kohya_plan.loading import load_plan
from kohya_plan.templates import list_templates

# Each family declares its templates (kohya_plan.families): one file per name ships.
FAMILY_OF = {name: f.name for f in FAMILIES.values() for name in f.templates}
NAMES = sorted(FAMILY_OF)


def test_templates_are_listed(run_cli) -> None:
    assert [t.name for t in list_templates()] == NAMES
    assert {"sdxl-character", "sdxl-style", "flux-character"} <= set(NAMES)
    result = run_cli("templates")
    assert result.exit_code == 0
    for name in NAMES:
        assert name in result.output
    assert all(t.description for t in list_templates())


@pytest.mark.parametrize("name", NAMES)
def test_template_validates(tmp_path: Path, run_cli, name: str) -> None:
    result = run_cli("init", tmp_path, "--template", name)
    assert result.exit_code == 0, result.output
    plan = load_plan(tmp_path / "plan.toml")
    assert plan.model.family == FAMILY_OF[name]


@pytest.mark.parametrize("name", NAMES)
def test_template_checks_and_makes(tmp_path: Path, run_cli, name: str) -> None:
    """init → check → make --dry-run, with images where the template's train_dir points."""
    run_cli("init", tmp_path, "--template", name)
    plan = load_plan(tmp_path / "plan.toml")
    assert plan.dataset.train_dir is not None
    size = plan.dataset.size
    make_images(plan.dataset.train_dir / "20_xunxian", [size] * 3, caption="xunxian, red hair")
    tokenizers = ready_tokenizers(tmp_path / "tokenizers", plan.model.family)
    sets = ("--set", f'model.tokenizer_cache_dir="{tokenizers}"')
    checked = run_cli("check", tmp_path / "plan.toml", "--json", *sets)
    doc = json.loads(checked.stdout)
    assert doc["errors"] == [], doc["errors"]
    made = run_cli("make", tmp_path / "plan.toml", "--dry-run", "--json", *sets)
    assert made.exit_code == 0, made.output
    argv = json.loads(made.stdout)["argv"]
    script = FAMILIES[FAMILY_OF[name]].script
    assert trainer_script(argv) == script


def test_character_template_has_the_tutorials_values(tmp_path: Path, run_cli) -> None:
    run_cli("init", tmp_path)
    plan = load_plan(tmp_path / "plan.toml")
    assert (plan.network.dim, plan.network.alpha) == (128, 64)
    assert plan.optimizer.type == "AdamW8bit"
    assert (plan.optimizer.unet_lr, plan.optimizer.text_encoder_lr) == (1e-4, 5e-5)
    assert plan.optimizer.scheduler == "cosine_with_restarts"
    assert plan.model.clip_skip == 2
    assert (plan.training.epochs, plan.training.batch_size) == (10, 1)
    assert plan.training.save_every_n_epochs == plan.sampling.every_n_epochs == 1
    assert "--w 512 --h 512 --d 1 --l 7.5 --s 28" in plan.sampling.prompts[0]
    assert load_plan(tmp_path / "plan.toml").model == plan.model


def test_lr_find_template_uses_dadaptation(tmp_path: Path, run_cli) -> None:
    run_cli("init", tmp_path, "-t", "sd15-lr-find")
    plan = load_plan(tmp_path / "plan.toml")
    assert plan.optimizer.type == "DAdaptation"
    assert plan.optimizer.learning_rate == 1.0


def test_realistic_template_uses_clip_skip_1(tmp_path: Path, run_cli) -> None:
    run_cli("init", tmp_path, "-t", "sd15-realistic")
    assert load_plan(tmp_path / "plan.toml").model.clip_skip == 1


def test_init_never_overwrites(tmp_path: Path, run_cli) -> None:
    (tmp_path / "plan.toml").write_text("mine", encoding="utf-8")
    result = run_cli("init", tmp_path)
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "plan.toml").read_text(encoding="utf-8") == "mine"


def test_unknown_template_lists_the_known_ones(tmp_path: Path, run_cli) -> None:
    result = run_cli("init", tmp_path, "-t", "sdxl")
    assert result.exit_code == 2
    assert "sd15-character" in result.output
    assert not (tmp_path / "plan.toml").exists()


def test_example_checks_clean(run_cli) -> None:
    example = REPO / "examples" / "tutorial" / "plan.toml"
    result = run_cli("check", example)
    assert result.exit_code == 0, result.output
    assert "1200 optimization steps" in result.output
    assert "Errors" not in result.output


def test_every_command_has_help_with_examples(run_cli) -> None:
    for command in ("init", "check", "make", "launch", "summary", "lr-find", "board", "report"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.output


def test_the_checkouts_own_sd_scripts_is_the_default(tmp_path, monkeypatch) -> None:
    """Without launch.sd_scripts or KOHYA_SD_SCRIPTS, the plan uses vendor/sd-scripts beside the
    package (the submodule of a source checkout), wherever the lookup code lives."""
    import kohya_plan
    from kohya_plan.inputs.trainer import locate_sd_scripts
    from kohya_plan.loading import validate_plan

    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    plan = validate_plan(
        {"model": {"base": "x/y"}, "dataset": {"train_dir": "d"}, "output": {"name": "n"}},
        tmp_path,
    )
    root = Path(kohya_plan.__file__).resolve().parent.parent
    assert locate_sd_scripts(plan) == root / "vendor" / "sd-scripts"
