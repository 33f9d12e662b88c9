"""Headless Chromium for the page tests (report.html, compare.html): found, run, read back.

Each page's own script sets attributes on <body> once loaded (`data-images-loaded`,
`data-charts`, …); `--dump-dom` prints the DOM after load, so a test reads them there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import TESTS

ARTIFACTS = TESTS / "artifacts"
"""Screenshots kept to look at (git-ignored)."""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) on PATH, else Debian's, else None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = find_chromium()
MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (apt-get install chromium); the browser check needs it",
    ),
]
"""A browser test module's `pytestmark`."""


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own profile folder, offline and quiet."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def body_attrs(dom: str) -> dict[str, str]:
    """The attributes of <body> in a dumped DOM."""
    match = re.search(r"<body([^>]*)>", dom)
    assert match is not None, dom[:2000]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
