"""lr-find's parts: the derived search plan, plateau detection, the new plan's text, and the
charts (the terminal's, and lr-find.png drawn by matplotlib)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import pytest
from helpers import REPO, base_plan

from kohya_plan.loading import loads_toml, validate_plan
from kohya_plan.workflows.lrfind.chart import BAND_COLOR, TE_COLOR, UNET_COLOR, dlr_chart
from kohya_plan.workflows.lrfind.search import (
    default_steps,
    derive_search,
    describe,
    find_plateau,
    new_plan_text,
    optimizer_table,
    text_chart,
)

if TYPE_CHECKING:
    from pathlib import Path

# Real values of lr/d*lr/unet from sd-scripts' DAdaptAdam run (run5, 4 steps): still rising.
RUN5 = [(1, 1e-06), (2, 8.38591e-06), (3, 1.53478e-05), (4, 6.23344e-05)]


def _dadapt_curve(final: float = 3.3e-5, steps: int = 300) -> list[tuple[int, float]]:
    """D-Adaptation's typical shape: geometric growth, then flat with small noise."""
    points = []
    for step in range(1, steps + 1):
        grow = final * min(1.0, 1e-3 * 1.08**step)
        noise = 1 + 0.01 * math.sin(step)
        points.append((step, grow * noise if grow >= final else grow))
    return points


def test_search_plan_is_adaptive_constant_and_short(tmp_path: Path) -> None:
    data = base_plan(sampling={"every_n_epochs": 1, "prompts": ["a --w 512"]})
    derived = derive_search(data, searcher="dadapt", steps=240)
    plan = validate_plan(derived, tmp_path)
    assert plan.optimizer.type == "DAdaptAdam"
    assert plan.optimizer.learning_rate == 1.0
    assert plan.optimizer.unet_lr is None
    assert plan.optimizer.text_encoder_lr is None
    assert (plan.optimizer.scheduler, plan.optimizer.warmup_steps) == ("constant", 0)
    assert plan.training.epochs is None
    assert plan.training.max_train_steps == 240
    assert plan.training.tensorboard is True
    assert plan.training.save_every_n_epochs == 0  # only the final file
    assert not plan.sampling.enabled
    assert plan.output.name == "testlora-lr-find"
    assert "epochs" in data["training"]
    prodigy = validate_plan(derive_search(data, searcher="prodigy", steps=10), tmp_path)
    assert prodigy.optimizer.type == "Prodigy"


def test_default_budget_from_the_data() -> None:
    assert default_steps(10) == 200
    assert default_steps(120) == 240
    assert default_steps(5000) == 1000


def test_plateau_found_where_the_curve_goes_flat() -> None:
    plateau = find_plateau(_dadapt_curve())
    assert plateau.settled
    assert math.isclose(plateau.value, 3.3e-5, rel_tol=0.02)
    assert 80 <= (plateau.since_step or 0) <= 100  # 1e-3 * 1.08**step reaches 1 at step ~90
    assert plateau.spread < 0.05
    assert "went flat at 3.3e-05" in describe(plateau)


def test_a_still_rising_curve_is_reported_plainly() -> None:
    plateau = find_plateau(RUN5)
    assert not plateau.settled
    assert plateau.value == 6.23344e-05
    text = describe(plateau)
    assert "never settled within 4 steps" in text
    assert "--steps" in text


def test_a_curve_that_moves_late_is_not_settled() -> None:
    points = _dadapt_curve(steps=200) + [(200 + i, 3.3e-5 * (1 + 0.02 * i)) for i in range(1, 60)]
    assert not find_plateau(points).settled


def test_plateau_ignores_nan_and_needs_values() -> None:
    assert find_plateau([(1, float("nan")), *RUN5]).points == 4
    with pytest.raises(ValueError, match="no learning-rate values"):
        find_plateau([(1, float("nan"))])


def test_new_optimizer_follows_t17_t20_t21() -> None:
    adamw = optimizer_table(
        3.3e-5, target="adamw8bit", te_ratio=0.5, scheduler="constant", train_te=True
    )
    assert adamw == {
        "type": "AdamW8bit",
        "learning_rate": 3.3e-5,
        "unet_lr": 3.3e-5,
        "scheduler": "constant",
        "text_encoder_lr": 1.65e-5,
    }
    lion = optimizer_table(3.3e-5, target="lion", te_ratio=0.1, scheduler="cosine", train_te=False)
    assert lion["type"] == "Lion"
    assert lion["unet_lr"] == 1.1e-5
    assert "text_encoder_lr" not in lion


ADAMW = optimizer_table(
    3.3e-5, target="adamw8bit", te_ratio=0.5, scheduler="cosine_with_restarts", train_te=True
)
NOTE = "Found by lr-find: 3.3e-05.\nT20/T21: AdamW8bit."

PLAN = """# my plan
[model]
base = "a/b"   # keep me

[optimizer]    # the optimizer
# old comment
type = "DAdaptAdam"              # T14
learning_rate = 1.0              # T15, D-Adaptation wants 1.0
args = { decouple = true }       # DAdaptAdam's own
warmup_steps = 10

# about the training
[training]
epochs = 8
"""


def test_new_plan_changes_only_the_optimizer_keys() -> None:
    # Comments inside [optimizer], at the ends of its lines (same column), before the next
    # section: all kept. New keys follow the last key; DAdaptAdam's args go with it.
    expected = """# my plan
[model]
base = "a/b"   # keep me

# Found by lr-find: 3.3e-05.
# T20/T21: AdamW8bit.
# Removed with the previous optimizer or scheduler: args.
[optimizer]    # the optimizer
# old comment
type = "AdamW8bit"               # T14
learning_rate = 3.3e-05          # T15, D-Adaptation wants 1.0
warmup_steps = 10
unet_lr = 3.3e-05
scheduler = "cosine_with_restarts"
text_encoder_lr = 1.65e-05

# about the training
[training]
epochs = 8
"""
    assert new_plan_text(PLAN, ADAMW, NOTE) == expected


def test_new_plan_adds_a_missing_optimizer_section_at_the_end() -> None:
    expected = """[model]
base = "a/b"

# n
[optimizer]
type = "Lion"
learning_rate = 1.1e-05
"""
    table = {"type": "Lion", "learning_rate": 1.1e-05}
    assert new_plan_text('[model]\nbase = "a/b"\n', table, "n") == expected
    assert new_plan_text('[model]\nbase = "a/b"', table, "n") == expected  # no final newline
    assert new_plan_text('[model]\nbase = "a/b"\n\n', table, "n") == expected


def test_new_plan_keeps_an_inline_optimizer_table_inline() -> None:
    text = """optimizer = { type = "DAdaptAdam", learning_rate = 1.0 }  # search first

[model]
base = "a/b"
"""
    table = {"type": "Lion", "learning_rate": 1.1e-05, "unet_lr": 1.1e-05}
    expected = """# n
optimizer = { type = "Lion", learning_rate = 1.1e-05, unet_lr = 1.1e-05 }  # search first

[model]
base = "a/b"
"""
    assert new_plan_text(text, table, "n") == expected


def test_new_plan_with_dotted_optimizer_keys() -> None:
    text = 'optimizer.type = "DAdaptAdam"\noptimizer.learning_rate = 1.0\n\n[model]\nbase = "x"\n'
    table = {"type": "AdamW8bit", "learning_rate": 3.3e-05}
    assert new_plan_text(text, table, "n") == (
        '# n\noptimizer.type = "AdamW8bit"\noptimizer.learning_rate = 3.3e-05\n\n'
        '[model]\nbase = "x"\n'
    )


def test_new_plan_drops_the_old_optimizers_args_table_and_unused_keys() -> None:
    text = """[optimizer]
type = "Prodigy"
learning_rate = 1.0
text_encoder_lr = 1.0
scheduler = "constant"
scheduler_num_cycles = 3

[optimizer.args]
d_coef = 2

[optimizer.scheduler_args]
x = 1

[training]
epochs = 8
"""
    # No text encoder training, another scheduler: their keys go too.
    table = optimizer_table(
        3.3e-5, target="adamw8bit", te_ratio=0.5, scheduler="cosine", train_te=False
    )
    expected = """# n
# Removed with the previous optimizer or scheduler: text_encoder_lr, scheduler_num_cycles, \
args, scheduler_args.
[optimizer]
type = "AdamW8bit"
learning_rate = 3.3e-05
scheduler = "cosine"
unet_lr = 3.3e-05

[training]
epochs = 8
"""
    assert new_plan_text(text, table, "n") == expected


def test_new_plan_keeps_the_args_of_the_same_optimizer() -> None:
    text = '[optimizer]\ntype = "adamw8bit"\nargs = { weight_decay = 0.1 }\n'
    new = new_plan_text(text, ADAMW, "n")
    assert loads_toml(new)["optimizer"]["args"] == {"weight_decay": 0.1}
    assert "Removed" not in new


def test_new_plan_needs_an_optimizer_table() -> None:
    with pytest.raises(ValueError, match="optimizer is int, not a table"):
        new_plan_text("optimizer = 5\n", ADAMW, "n")


def test_new_plan_for_the_tutorial_example_differs_only_in_optimizer_values() -> None:
    plan = REPO / "examples" / "tutorial" / "plan.toml"
    text = plan.read_text(encoding="utf-8")
    # (as lr-find makes it for this plan: AdamW8bit before and after, the same restarts)
    new = new_plan_text(text, {**ADAMW, "scheduler_num_cycles": 1}, NOTE)
    expected = (
        text.replace(
            "\n[optimizer]\n",
            "\n# Found by lr-find: 3.3e-05.\n# T20/T21: AdamW8bit.\n[optimizer]\n",
        )
        .replace("learning_rate = 1e-4             # T15", "learning_rate = 3.3e-05          # T15")
        .replace("unet_lr = 1e-4                   # T16", "unet_lr = 3.3e-05                # T16")
        .replace("text_encoder_lr = 5e-5           # T17", "text_encoder_lr = 1.65e-05       # T17")
    )
    assert new == expected
    assert new != text
    plan_new = validate_plan(loads_toml(new), plan.parent)
    assert (plan_new.optimizer.unet_lr, plan_new.optimizer.text_encoder_lr) == (3.3e-05, 1.65e-05)


def test_text_chart_shape() -> None:
    lines = text_chart(_dadapt_curve(), width=40, height=8)
    assert len(lines) == 10
    assert lines[0].startswith(" 3.33e-05")  # the top label is the highest value
    assert lines[0].endswith("█")  # flat at the top, right side
    assert "█" not in lines[0][11:15]  # low at the start


def _image(data: bytes) -> Any:
    from PIL import Image

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(data)).convert("RGB")


def _pixels(image: Any, colour: str) -> int:
    """How many pixels have exactly this colour (a line's core, a band's fill)."""
    counts = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 20)}
    return int(counts.get(tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5)), 0))


def test_chart_of_a_settled_search_shows_both_curves_and_the_flat_band() -> None:
    curve = _dadapt_curve()
    plateau = find_plateau(curve)
    data = dlr_chart(curve, plateau, [(s, v / 2) for s, v in curve])
    assert 20_000 < len(data) < 400_000
    image = _image(data)
    assert image.size == (1000, 500)
    assert _pixels(image, UNET_COLOR) > 1000  # a line across the plot, not just its legend key
    assert _pixels(image, TE_COLOR) > 500  # dashed
    assert _pixels(image, BAND_COLOR) > 5000


def test_chart_of_one_curve_has_one_line_and_the_band_where_it_went_flat() -> None:
    curve = _dadapt_curve()
    plateau = find_plateau(curve)
    image = _image(dlr_chart(curve, plateau))
    assert _pixels(image, UNET_COLOR) > 1000
    assert _pixels(image, TE_COLOR) == 0
    # Below the legend, the band starts where the curve went flat (step ~90 of 300) and runs
    # to its end.
    pixels = image.load()

    def columns(colour: tuple[int, int, int]) -> list[int]:
        width, height = image.size
        return [x for x in range(width) for y in range(100, height) if pixels[x, y] == colour]

    band, line = columns((0xBB, 0xF7, 0xD0)), columns((0x25, 0x63, 0xEB))
    first, last = min(line), max(line)  # steps 1 and 300
    since = first + (last - first) * ((plateau.since_step or 0) - 1) / 299
    assert abs(min(band) - since) < 6
    assert abs(max(band) - last) < 6


def test_equal_curves_both_show() -> None:
    """(As in a real 5-step DAdaptAdam run: the text encoder's d*lr is the U-Net's.)"""
    image = _image(dlr_chart(RUN5, find_plateau(RUN5), RUN5))
    assert _pixels(image, UNET_COLOR) > 300  # through the gaps of the dashed line on top
    assert _pixels(image, TE_COLOR) > 300


def test_chart_of_an_unsettled_search_has_no_band() -> None:
    image = _image(dlr_chart(RUN5, find_plateau(RUN5)))
    assert _pixels(image, UNET_COLOR) > 500
    assert _pixels(image, BAND_COLOR) == 0


def test_lr_find_reads_each_familys_text_encoder_tag() -> None:
    from kohya_plan.families import family
    from kohya_plan.workflows.lrfind.search import te_tags

    # networks.lora_flux names its group "textencoder 1 " (sd-scripts writes the space)
    assert te_tags(family("flux"))[0] == "lr/d*lr/textencoder 1 "
    assert te_tags(family("sdxl")) == ["lr/d*lr/textencoder"]
