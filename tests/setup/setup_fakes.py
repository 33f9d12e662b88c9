"""Offline stand-ins for `kohya-plan setup`'s tests: a tiny sd-scripts repository in a bare git
mirror, and a folder of hand-made wheels (torch, torchvision, accelerate, ...) so that pip runs
for real with `--no-index --find-links` and nothing reaches the network.

The fake sd-scripts builds with an in-tree PEP 517 backend (no setuptools to download); with
$FAKE_SD_SLOW_BUILD set to a file path, its editable build writes that file and then sleeps, so
a test can kill setup in the middle of a step.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

FAKE_WHEELS = {
    "torch": "2.14.1",
    "torchvision": "0.29.1",
    "accelerate": "1.6.0",
    "fakereq": "1.0",
    "dadaptation": "3.2",
}

REQUIREMENTS = "accelerate==1.6.0\nfakereq==1.0\n# for kohya_ss library\n-e .\n"

_BACKEND = '''
"""A minimal in-tree PEP 517/660 backend: wheels of the `library` package, no setuptools."""
import base64, hashlib, os, time, zipfile
from pathlib import Path

NAME, VERSION = "library", "0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DIST = f"{NAME}-{VERSION}.dist-info"


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel(directory, files):
    files = dict(files)
    files[f"{DIST}/METADATA"] = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{DIST}/WHEEL"] = (
        "Wheel-Version: 1.0\\nGenerator: fake\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    lines = [_record_line(n, d.encode()) for n, d in files.items()] + [f"{DIST}/RECORD,,"]
    files[f"{DIST}/RECORD"] = "\\n".join(lines) + "\\n"
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    code = (ROOT / "library/__init__.py").read_text()
    return _wheel(wheel_directory, {"library/__init__.py": code})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    slow = os.environ.get("FAKE_SD_SLOW_BUILD")
    if slow:
        Path(slow).write_text("building")
        time.sleep(120)
    return _wheel(wheel_directory, {"_library_editable.pth": str(ROOT) + "\\n"})
'''

REPO_FILES = {
    "train_network.py": "print('fake sd-scripts trainer')\n",
    "requirements.txt": REQUIREMENTS,
    "library/__init__.py": "VERSION = 'fake'\n",
    "networks/__init__.py": "",
    "networks/lora.py": "NETWORK = 'lora'\n",
    "pyproject.toml": (
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n'
    ),
    "_build/backend.py": _BACKEND,
}


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path, name: str, version: str, code: str | None = None) -> Path:
    """A pure-Python wheel holding package `name` (its __version__ = version)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code if code is not None else f"__version__ = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: fake\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    lines = [_record_line(n, d.encode()) for n, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = "\n".join(lines) + "\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return path


def make_wheels(folder: Path, versions: dict[str, str] | None = None) -> Path:
    """The wheel folder for --find-links: every FAKE_WHEELS entry (or the versions given)."""
    for name, version in (versions or FAKE_WHEELS).items():
        make_wheel(folder, name, version)
    return folder


# Variables that point git at another repository: set by `git rebase --exec` and by hooks, they
# would make the fake mirror's `git init`/`commit` act on the repository the tests run in.
_GIT_LOCATION = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


def _git(args: list[str], cwd: Path) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if k not in _GIT_LOCATION},
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@dataclass(frozen=True)
class Mirror:
    """A bare git repository holding a fake sd-scripts with two commits."""

    path: Path
    commit: str  # the one setup is asked for
    other: str  # a later commit (for "at another commit")


def make_mirror(root: Path) -> Mirror:
    """A bare mirror made from REPO_FILES: commit 1, then commit 2 changing the trainer."""
    work = root / "sd-scripts-src"
    for name, text in REPO_FILES.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(["init", "-q", "-b", "main"], work)
    _git(["add", "-A"], work)
    _git(["commit", "-q", "-m", "fake sd-scripts"], work)
    first = _git(["rev-parse", "HEAD"], work)
    (work / "train_network.py").write_text("print('fake sd-scripts trainer, v2')\n")
    _git(["commit", "-q", "-am", "v2"], work)
    second = _git(["rev-parse", "HEAD"], work)
    bare = root / "sd-scripts.git"
    _git(["clone", "-q", "--bare", str(work), str(bare)], root)
    return Mirror(bare, first, second)
