"""[sampling]: sample images during training (T24/T25) and the prompt syntax sd-scripts reads."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from kohya_plan.plan.common import Bool, PositiveInt, Section, Text

SAMPLERS = (
    "ddim",
    "pndm",
    "lms",
    "euler",
    "euler_a",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "dpmsolver",
    "dpmsolver++",
    "dpmsingle",
    "k_lms",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
)
# sd-scripts' line_to_prompt_dict: each " --"-separated piece is re.match-ed case-insensitively.
_FLAGS: dict[str, tuple[str, str]] = {
    "w": (r"\d+", "width in pixels, e.g. --w 512"),
    "h": (r"\d+", "height in pixels, e.g. --h 512"),
    "d": (r"\d+", "seed, e.g. --d 1"),
    "s": (r"\d+", "sampling steps, e.g. --s 28"),
    "l": (r"[\d.]+", "CFG scale, e.g. --l 7.5"),
    "g": (r"[\d.]+", "FLUX.1's embedded guidance, e.g. --g 3.5"),
    "n": (r".+", "negative prompt, e.g. --n low quality"),
    "ss": (r".+", "sampler, e.g. --ss euler_a"),
}


def prompt_problems(line: str) -> list[str]:
    """Problems sd-scripts would ignore silently (or only log) in one sample-prompt line."""
    pieces = line.split(" --")
    problems: list[Text] = []
    for piece in pieces[1:]:
        name, _, rest = piece.strip().partition(" ")
        key = name.lower()
        if key not in _FLAGS:
            problems.append(
                f"unknown flag --{name} (sd-scripts ignores it) — use --n, --w, --h, --d, --l, "
                "--g, --s or --ss"
            )
            continue
        pattern, example = _FLAGS[key]
        value = rest.strip()
        if not re.fullmatch(pattern, value):
            problems.append(f"--{name} {value!r} is not valid — {example}")
        elif key == "ss" and value.lower() not in SAMPLERS:
            problems.append(
                f"unknown sampler {value!r} (sd-scripts would fall back to DDIM) — use one of "
                + ", ".join(SAMPLERS)
            )
        elif key in ("w", "h") and int(value) < 64:
            problems.append(f"--{name} {value} is below 64 px — use at least --{name} 64")
        elif key == "s" and not 1 <= int(value) <= 1000:
            problems.append(f"--s {value} is outside 1..1000 — e.g. --s 28")
    return problems


class SamplingSection(Section):
    """Sample images at set intervals so progress can be seen (T24/T25)."""

    every_n_epochs: PositiveInt | None = Field(None, description="T24: sample every N epochs.")
    every_n_steps: PositiveInt | None = Field(None, description="T24: sample every N steps.")
    at_first: Bool = Field(False, description="Also sample before the first step.")
    sampler: Text = Field("euler_a", description="Default sampler for prompts without --ss.")
    prompts: tuple[Text, ...] = Field((), description="T25: one prompt per entry, with --n/--w/...")

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value not in SAMPLERS:
            msg = f"sd-scripts has no sampler {value!r} — use one of " + ", ".join(SAMPLERS)
            raise ValueError(msg)
        return value

    @field_validator("prompts")
    @classmethod
    def _prompts_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems: list[str] = []
        for index, line in enumerate(value):
            if "\n" in line or "\r" in line:
                problems.append(f"prompt {index + 1} spans several lines — one line per prompt")
            elif not line.strip() or line.lstrip().startswith("#"):
                problems.append(
                    f"prompt {index + 1} is empty or starts with '#' (sd-scripts skips it) — "
                    "remove it or write a prompt"
                )
            problems.extend(f"prompt {index + 1}: {p}" for p in prompt_problems(line))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def enabled(self) -> bool:
        """Sampling happens only with prompts and a schedule."""
        return bool(self.prompts) and bool(
            self.every_n_epochs or self.every_n_steps or self.at_first
        )
