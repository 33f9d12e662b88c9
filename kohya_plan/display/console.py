"""The terminal: one console for stdout, one for stderr (markup off: trainer text is printed
literally), and the basic verbs every command uses."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kohya_plan.findings import Finding

OUT = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
ERR = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def error(message: str) -> None:
    """One error line on stderr."""
    ERR.print(Text("error: ", style="bold red") + Text(message))


def warning(message: str) -> None:
    """One warning line on stderr (bold: the user must not miss it)."""
    ERR.print(Text("warning: ", style="bold yellow") + Text(message, style="bold"))


def problems(items: Sequence[Finding], title: str = "The plan has problems") -> None:
    """Every problem, one per line, on stderr."""
    ERR.print(Text(f"{title} ({len(items)}):", style="bold red"))
    for item in items:
        ERR.print(Text("  ✗ ", style="red") + Text(str(item)))


def plain(text: str = "") -> None:
    """A line on stdout, printed as is."""
    OUT.print(Text(text))


def raw(text: str) -> None:
    """Text written to stdout byte for byte (JSON, rendered files)."""
    sys.stdout.write(text)
    sys.stdout.flush()
