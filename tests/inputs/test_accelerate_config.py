"""Where accelerate looks for its default config, and reading it (YAML, JSON, broken)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kohya_plan.inputs.accelerate_config import (
    changing_keys,
    default_config_path,
    flat_yaml,
    read_default_config,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_the_path_follows_hf_home_then_xdg_cache(tmp_path: Path) -> None:
    assert default_config_path({"HF_HOME": str(tmp_path)}) == (
        tmp_path / "accelerate" / "default_config.yaml"
    )
    xdg = default_config_path({"XDG_CACHE_HOME": str(tmp_path)})
    assert xdg == tmp_path / "huggingface" / "accelerate" / "default_config.yaml"
    # the JSON file only when it is the only one (accelerate's backward compatibility)
    folder = tmp_path / "accelerate"
    folder.mkdir()
    (folder / "default_config.json").write_text('{"distributed_type": "NO"}')
    assert default_config_path({"HF_HOME": str(tmp_path)}).name == "default_config.json"
    (folder / "default_config.yaml").write_text("distributed_type: 'NO'\n")
    assert default_config_path({"HF_HOME": str(tmp_path)}).name == "default_config.yaml"


def test_reading_yaml_json_and_a_broken_file(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path)}
    assert read_default_config(env) is None
    folder = tmp_path / "accelerate"
    folder.mkdir()
    (folder / "default_config.json").write_text('{"num_processes": 2, "gpu_ids": "0,1"}')
    found = read_default_config(env)
    assert found is not None
    assert found.values == {"num_processes": 2, "gpu_ids": "0,1"}
    (folder / "default_config.yaml").write_text("use_cpu: true\ndynamo_config:\n  x: 1\n")
    found = read_default_config(env)
    assert found is not None
    assert found.values == {"use_cpu": True, "dynamo_config": {"x": 1}}
    assert changing_keys(found.values) == {"use_cpu": True}
    (folder / "default_config.yaml").write_text("- a list\n")
    broken = read_default_config(env)
    assert broken is not None
    assert broken.error == "holds list, not a mapping"


def test_flat_yaml_reads_the_top_level_lines() -> None:
    text = "distributed_type: 'MULTI_GPU'\nnum_processes: 2\nuse_cpu: false\nx: ~\n  nested: 1\n"
    assert flat_yaml(text) == {
        "distributed_type": "MULTI_GPU",
        "num_processes": 2,
        "use_cpu": False,
        "x": None,
    }
