"""The rules one by one (pure: a plan and hand-made facts, no files): boundaries, waivers,
and when a rule does not apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import base_plan

from kohya_plan.checks import blocking, lora_file_bytes, lora_parameters, run_checks
from kohya_plan.inputs.facts import Facts, FolderFacts, ResolvedSubset, StepFacts
from kohya_plan.loading import validate_plan


def _plan(**sections: dict[str, Any]):
    return validate_plan(base_plan(**sections), Path("/plans"))


def _facts(
    images: int = 30,
    *,
    heads: tuple[tuple[str, ...], ...] = (),
    total: int = 1500,
    epochs: int = 10,
    sizes: tuple[tuple[int, int], ...] | None = None,
) -> Facts:
    subset = ResolvedSubset(Path("/plans/data/5_x"), 5, False, "x")
    folder = FolderFacts(subset, True, images, sizes or ((512, 512),) * images, caption_heads=heads)
    steps = StepFacts(total // epochs, total // epochs, epochs, total, total, images * 5, 0, ())
    return Facts("hub", "a/b", folders=(folder,), steps=steps)


def _ids(plan, facts: Facts | None = None) -> set[str]:
    return {f.id for f in run_checks(plan, facts or _facts())}


@pytest.mark.parametrize(
    ("te", "flagged"),
    [(1e-5, False), (5e-5, False), (2e-5, False), (0.99e-5, True), (5.01e-5, True), (1e-4, True)],
)
def test_te_lr_ratio_bounds_are_inclusive(te: float, flagged: bool) -> None:
    plan = _plan(optimizer={"unet_lr": 1e-4, "text_encoder_lr": te})
    assert ("te-lr-ratio" in _ids(plan)) is flagged


def test_te_lr_falls_back_to_learning_rate() -> None:
    data = base_plan(optimizer={"learning_rate": 2e-4, "text_encoder_lr": 1e-4})
    del data["optimizer"]["unet_lr"]
    assert "te-lr-ratio" not in _ids(validate_plan(data, Path("/plans")))  # half of 2e-4
    data["optimizer"]["text_encoder_lr"] = 2e-4
    (finding,) = [
        f
        for f in run_checks(validate_plan(data, Path("/plans")), _facts())
        if f.id == "te-lr-ratio"
    ]
    assert "learning_rate = 0.0002" in finding.message
    assert "1×" in finding.message


def test_te_lr_not_applicable_without_text_encoder_training() -> None:
    plan = _plan(network={"train_unet_only": True}, optimizer={"text_encoder_lr": 1e-4})
    assert "te-lr-ratio" not in _ids(plan)
    assert "te-lr-ratio" not in _ids(_plan(optimizer={"text_encoder_lr": 0.0}))
    assert "te-lr-zero" in _ids(_plan(optimizer={"text_encoder_lr": 0.0}))


def test_alpha_equal_to_dim_passes_above_fails() -> None:
    assert "alpha-above-dim" not in _ids(_plan(network={"dim": 32, "alpha": 32}))
    assert "alpha-above-dim" in _ids(_plan(network={"dim": 32, "alpha": 33}))


def test_waived_errors_do_not_block_but_are_reported() -> None:
    plan = _plan(network={"alpha": 64}, rules={"allow": ["alpha-above-dim"]})
    findings = run_checks(plan, _facts())
    alpha = next(f for f in findings if f.id == "alpha-above-dim")
    assert alpha.waived
    assert not blocking(findings)


@pytest.mark.parametrize(
    ("total", "flagged"), [(999, True), (1000, False), (2000, False), (2001, True)]
)
def test_steps_advice_t6(total: int, flagged: bool) -> None:
    assert ("steps-range" in _ids(_plan(), _facts(total=total))) is flagged


@pytest.mark.parametrize(("images", "flagged"), [(19, True), (20, False), (50, False), (51, True)])
def test_image_count_advice_t7(images: int, flagged: bool) -> None:
    assert ("image-count" in _ids(_plan(), _facts(images))) is flagged


@pytest.mark.parametrize(("epochs", "flagged"), [(4, True), (5, False), (10, False), (11, True)])
def test_epochs_advice_t8(epochs: int, flagged: bool) -> None:
    assert ("epochs-range" in _ids(_plan(), _facts(epochs=epochs))) is flagged


@pytest.mark.parametrize(("dim", "flagged"), [(3, True), (4, False), (128, False), (129, True)])
def test_rank_advice_t11(dim: int, flagged: bool) -> None:
    assert ("rank-range" in _ids(_plan(network={"dim": dim, "alpha": 1}))) is flagged


def test_advice_never_blocks() -> None:
    findings = run_checks(_plan(network={"dim": 256, "alpha": 1}), _facts(3, total=10, epochs=1))
    assert {"rank-range", "image-count", "steps-range", "epochs-range"} <= {f.id for f in findings}
    assert not blocking(findings)


def test_clip_skip_style_t23() -> None:
    assert "clip-skip-style" in _ids(_plan(model={"base": "a/anything-v5", "clip_skip": 1}))
    assert "clip-skip-style" in _ids(_plan(model={"base": "a/realisticVision", "clip_skip": 2}))
    assert "clip-skip-style" not in _ids(_plan(model={"base": "a/anything-v5", "clip_skip": 2}))


HEADS = tuple(("xunxian", "1girl", tag) for tag in ("red", "blue", "hat", "sky"))


def test_keep_tokens_t22_against_the_captions() -> None:
    shuffled = {"shuffle_caption": True}
    ids = _ids(_plan(dataset={**shuffled, "keep_tokens": 0}), _facts(heads=HEADS))
    assert "keep-tokens" in ids
    finding = next(
        f
        for f in run_checks(_plan(dataset={**shuffled, "keep_tokens": 0}), _facts(heads=HEADS))
        if f.id == "keep-tokens"
    )
    assert "keep_tokens = 2" in finding.fix  # "xunxian" and "1girl" lead every caption
    assert "keep-tokens" not in _ids(
        _plan(dataset={**shuffled, "keep_tokens": 2}), _facts(heads=HEADS)
    )
    assert "keep-tokens" in _ids(_plan(dataset={**shuffled, "keep_tokens": 3}), _facts(heads=HEADS))
    assert "keep-tokens" in _ids(_plan(dataset={"keep_tokens": 1}), _facts(heads=HEADS))


def test_mixed_sizes_without_buckets_t13() -> None:
    facts = _facts(2, sizes=((512, 512), (512, 768)))
    assert "mixed-sizes-no-bucket" in _ids(_plan(dataset={"enable_bucket": False}), facts)
    assert "mixed-sizes-no-bucket" not in _ids(_plan(), facts)


def test_lora_size_t11() -> None:
    plan = _plan(network={"dim": 128, "alpha": 64})
    assert lora_parameters(plan) == 75_497_472
    # T11: rank 128 is the 144 MiB file (fp16), plus one alpha per module (264)
    assert lora_file_bytes(plan) == 144 * 2**20 + 264 * 2


@pytest.mark.parametrize(
    ("name", "adaptive"),
    [
        ("DAdaptAdam", True),
        ("dadaptation", True),
        ("Prodigy", True),
        ("prodigyplus.ProdigyPlusScheduleFree", True),
        ("AdamW8bit", False),
        ("Lion", False),
        ("pytorch_optimizer.CAME", False),
    ],
)
def test_adaptive_optimizers_are_decided_in_one_place(name: str, adaptive: bool) -> None:
    from kohya_plan.plan.optimizer import is_adaptive

    assert is_adaptive(name) is adaptive
