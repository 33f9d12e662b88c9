"""The `kohya-plan` command group: its options, error handling and shared parameter types."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import click

from kohya_plan import __version__
from kohya_plan.errors import EXIT_INTERNAL, EXIT_STOPPED, KohyaPlanError, PlanError

_SET_HELP = "Override a plan key, typed as TOML: --set training.epochs=5 (repeatable)."

_DURATION = re.compile(
    r"\s*([+-]?(?:[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?|nan|inf(?:inity)?))\s*(s|m|min|h)?\s*",
    re.IGNORECASE,
)
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.2+
    """A duration: 90, 90s, 30m, 2h. Finite, not negative, within [minimum, maximum] (or 0
    when `off` allows it); NaN, infinity, negative and absurd values are usage errors."""

    name = "duration"

    def __init__(self, minimum: float, maximum: float, *, off: bool = False) -> None:
        self.minimum, self.maximum, self.off = minimum, maximum, off

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = _DURATION.fullmatch(str(value))
            if match is None:
                self.fail(
                    f"{value!r} is not a duration: give seconds (90), or 90s, 30m, 2h", param, ctx
                )
            seconds = float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite duration", param, ctx)
        if seconds == 0 and self.off:
            return 0.0
        if not self.minimum <= seconds <= self.maximum:
            zero = " (0 turns it off)" if self.off else ""
            self.fail(
                f"{value!r} is out of range: give {_human(self.minimum)} to "
                f"{_human(self.maximum)}{zero}",
                param,
                ctx,
            )
        return seconds


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN (which compares false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class _Group(click.Group):
    """Turns errors into messages and exit codes by kind; `--debug` shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlanError as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.problems(exc.findings)
            ctx.exit(exc.exit_code)
        except KohyaPlanError as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.error(str(exc))
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            ctx.exit(EXIT_STOPPED)
        except Exception as exc:
            if _debug(ctx):
                raise
            from kohya_plan import display

            display.error(
                f"kohya-plan failed unexpectedly ({type(exc).__name__}: {exc}) — run the "
                "command again with --debug to see where, and please report it"
            )
            ctx.exit(EXIT_INTERNAL)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("KOHYA_PLAN_DEBUG", "") not in ("", "0")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from kohya_plan import display
    from kohya_plan.options import sd_scripts_commit

    display.plain(f"kohya-plan {__version__} (for kohya-ss/sd-scripts {sd_scripts_commit()})")
    ctx.exit()


_EPILOG = """
Exit status:
  0    done (a launched run succeeded)
  1    kohya-plan itself failed (a bug: --debug shows the traceback)
  2    the plan, its data or the command line is wrong (every problem is listed)
  3    the training failed (the summary names sd-scripts' cause)
  130  stopped (Ctrl-C, a signal)
"""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the sd-scripts commit it was made for.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an error (also KOHYA_PLAN_DEBUG=1).",
)
def cli(debug: bool) -> None:
    """Plan, check and launch kohya-ss/sd-scripts LoRA training from one TOML file.

    \b
    Typical session:
      kohya-plan setup                        # sd-scripts + its Python, once (~6 GB)
      kohya-plan init my-lora                 # a commented plan.toml to edit
      kohya-plan import my_lora.json          # ... or one made from your kohya_ss config
      kohya-plan check my-lora/plan.toml      # every problem at once, and the exact steps
      kohya-plan make my-lora/plan.toml --dry-run   # the exact command, nothing written
      kohya-plan make my-lora/plan.toml       # a new run folder with all sd-scripts files
      kohya-plan launch my-lora/plan.toml     # run it supervised, with progress and a summary

    \b
    More GPUs, machines, a cluster, many runs:
      kohya-plan submit my-lora/plan.toml     # as a SLURM job; `status`, `stop` follow it
      kohya-plan sweep my-lora/plan.toml --grid network.dim=16,32   # one run per value
      kohya-plan compare SWEEP_DIR            # their samples side by side
    """


def _plan_file(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """PLAN may also be the folder `kohya-plan init` made (its plan.toml)."""
    from kohya_plan.loading import plan_file

    return plan_file(value)


plan_argument = click.argument(
    "plan_path", metavar="PLAN", type=click.Path(path_type=Path), callback=_plan_file
)
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
