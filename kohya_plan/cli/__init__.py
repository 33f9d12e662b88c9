"""Command-line interface: thin click commands over the library (the only click importer).

`group` holds the `kohya-plan` group, its error handling and the shared parameter types; each
other module adds one area's commands to it when imported here.
"""

from __future__ import annotations

from kohya_plan.cli import install, plans, runs, tools
from kohya_plan.cli.group import FiniteFloatRange, Seconds, cli

__all__ = ["FiniteFloatRange", "Seconds", "cli", "main"]

# The command modules register their commands on `cli` when imported (above).
_COMMANDS = (plans, runs, tools, install)


def main() -> None:
    """Entry point of the `kohya-plan` script."""
    cli(prog_name="kohya-plan")
