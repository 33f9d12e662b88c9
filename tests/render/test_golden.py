"""Golden files for everything `make` renders.

Each case is tests/golden/<case>/plan.toml, rendered in a temporary copy with its dataset; the
outputs (dataset.toml, config.toml, prompts.txt, command.sh, command.ps1, plan.toml) are
compared byte for byte with the files beside it, after the temporary root is replaced by
<ROOT>. When a change to the output is intended, refresh them with
`pytest tests/render/test_golden.py --update-golden` and review the diff.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from helpers import (
    REPO,
    TESTS,
    flux_stub_files,
    make_images,
    ready_tokenizers,
    write_diffusers,
    write_sdxl_diffusers,
)

from kohya_plan.planning import check_plan, make_run

if TYPE_CHECKING:
    from pathlib import Path

GOLDEN = TESTS / "golden"
EXAMPLE = REPO / "examples" / "tutorial"
OUTPUTS = (
    "dataset.toml",
    "config.toml",
    "prompts.txt",
    "command.sh",
    "command.ps1",
    "accelerate.json",
    "plan.toml",
)


def _prepare(case: str, root: Path) -> Path:
    if case == "tutorial":
        shutil.copytree(EXAMPLE / "datasets", root / "datasets")
        text = (EXAMPLE / "plan.toml").read_text(encoding="utf-8")
        # Pin what the environment would otherwise decide (sd-scripts and its Python).
        text = text.replace(
            "# sd_scripts = ", 'sd_scripts = "sd-scripts"\npython = "/opt/sd/bin/python"\n# '
        )
        (root / "plan.toml").write_text(text, encoding="utf-8")
    elif case == "subsets-reg":
        shutil.copy(GOLDEN / case / "plan.toml", root / "plan.toml")
        make_images(root / "images" / "portraits", [(512, 768)] * 3, caption="sks woman, smile")
        make_images(root / "images" / "full body", [(768, 512)] * 2, caption_ext=".caption")
        make_images(root / "reg" / "1_woman", [(512, 512)] * 4, caption="woman")
        write_diffusers(root / "models" / "tiny sd15")
    else:  # sdxl, flux: a family's own files (buckets where the 32-px step differs)
        shutil.copy(GOLDEN / case / "plan.toml", root / "plan.toml")
        sizes = [(1024, 1024)] * 3 + [(1216, 832)] * 2 + [(800, 1250)]
        make_images(root / "data" / "10_sks", sizes, caption="sks woman, smile")
        ready_tokenizers(root / "tokenizer cache", case)
        if case == "sdxl":
            _sdxl_folder(root / "models" / "tiny sdxl")
        else:
            flux_stub_files(root / "models")  # dit, ae, clip_l, t5xxl .safetensors
    return root / "plan.toml"


def _sdxl_folder(folder: Path) -> None:
    write_sdxl_diffusers(folder)  # a Diffusers folder with its parts, as check wants


@pytest.mark.parametrize("case", ["tutorial", "subsets-reg", "sdxl", "flux"])
def test_rendered_files_match_golden(
    tmp_path: Path, case: str, update_golden: bool, offline_hub: Path
) -> None:
    root = tmp_path / "root dir"
    root.mkdir()
    report = check_plan(_prepare(case, root))
    assert report.ok, [str(f) for f in report.findings]
    run_dir = make_run(report).run_dir
    for name in OUTPUTS:
        text = (run_dir / name).read_text(encoding="utf-8")
        text = text.replace(run_dir.name, "<RUN>").replace(str(root), "<ROOT>")
        text = text.replace(str(offline_hub), "<HF_HOME>")
        golden = GOLDEN / case / f"expected-{name}"
        if update_golden:
            golden.write_text(text, encoding="utf-8")
        else:
            assert golden.exists(), f"{golden} missing: run pytest --update-golden"
            assert text == golden.read_text(encoding="utf-8"), f"{case}/{name} differs"
