"""kohya_plan.inputs.hub against a Hugging Face cache built by hand in tmp_path; never the network.

Every test runs with HF_HOME in tmp_path, HF_HUB_OFFLINE=1, a fake HF_TOKEN and sockets that
refuse to connect. The "online" paths replace huggingface_hub's functions with fakes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import helpers
import huggingface_hub
import huggingface_hub.constants
import pytest
import sdlab
from helpers import sd15_pipeline
from huggingface_hub import utils as hf_utils
from huggingface_hub.utils.tqdm import are_progress_bars_disabled
from test_checkpoint import SD15, SDXL, write_safetensors

from kohya_plan.errors import LaunchError
from kohya_plan.inputs import hub
from kohya_plan.inputs.checkpoint import detect_family
from kohya_plan.inputs.hub import HubRef, parse_model_ref

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

FAKE_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdef"
COMMIT = "a" * 40
OTHER_COMMIT = "b" * 40
SD_REPO = "org/tiny-sd"


# --- fixtures and a hand-built cache --------------------------------------------------------


@pytest.fixture(autouse=True)
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF_HOME, offline, with a token that must never show up anywhere."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return home


def go_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let kohya_plan.inputs.hub believe it may use the network (every network call is a fake)."""
    from kohya_plan.inputs.hub import fetch

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(fetch, "hub_unreachable", lambda: None)  # the probe would connect


def cache_dir() -> Path:
    return Path(os.environ["HF_HOME"]) / "hub"


def cache_repo(
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    commit: str = COMMIT,
    refs: tuple[str, ...] = ("main",),
) -> Path:
    """Lay out ``models--ORG--NAME`` as huggingface_hub does: blobs, symlinked snapshot, refs."""
    return helpers.cache_repo(cache_dir(), repo_id, files, commit=commit, refs=refs)


def safetensors_bytes(tmp_path: Path, tensors: dict[str, list[int]]) -> bytes:
    return write_safetensors(tmp_path / "scratch.safetensors", tensors).read_bytes()


def sdxl_pipeline() -> dict[str, bytes]:
    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    files = {
        "model_index.json": json.dumps(index).encode(),
        "scheduler/scheduler_config.json": b"{}",
        "tokenizer_2/vocab.json": b"{}",
        "tokenizer_2/merges.txt": b"#version: 0.2\n",
    }
    for part, weights in [
        ("text_encoder", "model.safetensors"),
        ("text_encoder_2", "model.safetensors"),
        ("unet", "diffusion_pytorch_model.safetensors"),
        ("vae", "diffusion_pytorch_model.safetensors"),
    ]:
        files[f"{part}/config.json"] = b"{}"
        files[f"{part}/{weights}"] = part.encode()
    return files


def make_error(name: str, message: str = "boom") -> Exception:
    """A real huggingface_hub error, built without the HTTP response its __init__ wants."""
    cls = getattr(hf_utils, name)
    exc: Exception = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


# --- parse_model_ref ------------------------------------------------------------------------

HASH = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("base", "repo", "revision", "filename"),
    [
        ("org/name", "org/name", None, None),
        ("hf://org/name", "org/name", None, None),
        ("  org/name  ", "org/name", None, None),
        (
            "stabilityai/stable-diffusion-xl-base-1.0",
            "stabilityai/stable-diffusion-xl-base-1.0",
            None,
            None,
        ),
        ("org/name@main", "org/name", "main", None),
        (f"org/name@{HASH}", "org/name", HASH, None),
        ("org/name@v1.0", "org/name", "v1.0", None),
        ("org/name@refs/pr/3", "org/name", "refs/pr/3", None),
        ("org/name@feature/x", "org/name", "feature/x", None),
        ("org/name/model.safetensors", "org/name", None, "model.safetensors"),
        ("org/name/sub/dir/model.ckpt", "org/name", None, "sub/dir/model.ckpt"),
        ("hf://org/name/model.safetensors", "org/name", None, "model.safetensors"),
        ("org/name@v1.0/sub/m.safetensors", "org/name", "v1.0", "sub/m.safetensors"),
        (f"org/name@{HASH}/m.safetensors", "org/name", HASH, "m.safetensors"),
        ("org/name@refs/pr/3/m.safetensors", "org/name", "refs/pr/3", "m.safetensors"),
        ("org/name/M.SafeTensors", "org/name", None, "M.SafeTensors"),
    ],
)
def test_parse_model_ref(base: str, repo: str, revision: str | None, filename: str | None) -> None:
    ref = parse_model_ref(base)
    assert ref == HubRef(repo, revision, filename)
    assert parse_model_ref(str(ref)) == ref  # str() is canonical and round-trips
    assert hub.is_hub_ref(base)


@pytest.mark.parametrize(
    ("base", "words"),
    [
        ("", "not a Hugging Face repo id"),
        ("name", "not a Hugging Face repo id"),
        ("./a/b", "not a Hugging Face repo id"),
        ("../a/b", "not a Hugging Face repo id"),
        ("/abs/path/model.safetensors", "not a Hugging Face repo id"),
        ("C:/models/x", "not a Hugging Face repo id"),
        ("C:\\models\\x.safetensors", "not a Hugging Face repo id"),
        ("~/models/x", "not a Hugging Face repo id"),
        ("models/sd15.safetensors", "looks like a local file path"),
        ("org/name/subfolder", "must name a checkpoint file"),
        ("org/name/a/../b.safetensors", "'..' part"),
        ("org/name@", "nothing after '@'"),
        ("org/name@v1.safetensors", "revision cannot end in a file suffix"),
        ("org/name@bad rev", "not a valid revision"),
        ("org--x/name", "not a Hugging Face repo id"),
        ("org/na..me", "not a Hugging Face repo id"),
        ("-org/name", "not a Hugging Face repo id"),
        ("org/name-", "not a Hugging Face repo id"),
        ("org/" + "n" * 97, "not a Hugging Face repo id"),
    ],
)
def test_parse_model_ref_rejects(base: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_model_ref(base)
    assert not hub.is_hub_ref(base)


# --- where things live ----------------------------------------------------------------------


def test_cache_locations_follow_the_environment(
    hf_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub.hf_home() == hf_env
    assert hub.hub_cache_dir() == hf_env / "hub"
    assert hub.default_tokenizer_cache() == hf_env / "kohya-plan" / "tokenizers"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert hub.hub_cache_dir() == tmp_path / "legacy"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub.hub_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.hf_home() == tmp_path / "xdg" / "huggingface"


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("yes", True), ("0", False)])
def test_is_offline(monkeypatch: pytest.MonkeyPatch, value: str, offline: bool) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.is_offline() is offline


# --- Diffusers repos from the cache ---------------------------------------------------------


def test_cached_repo_resolves_to_its_snapshot_offline() -> None:
    snapshot = cache_repo(SD_REPO, sd15_pipeline())
    path = hub.resolve_model(parse_model_ref(SD_REPO), family="sd15", progress=False)
    assert path == snapshot
    assert detect_family(path) == "sd15"
    assert hub.cached_model(parse_model_ref(SD_REPO)) == snapshot


def test_revision_by_ref_name_and_by_commit_hash() -> None:
    main = cache_repo(SD_REPO, sd15_pipeline(), commit=COMMIT, refs=("main",))
    tagged = cache_repo(
        SD_REPO, sd15_pipeline(**{"unet/x.json": b"{}"}), commit=OTHER_COMMIT, refs=("v2",)
    )
    assert hub.resolve_model(parse_model_ref(f"{SD_REPO}@v2"), family="sd15") == tagged
    assert hub.resolve_model(parse_model_ref(f"{SD_REPO}@{COMMIT}"), family="sd15") == main
    assert hub.resolve_model(parse_model_ref(SD_REPO), family="sd15") == main


def test_offline_and_not_cached_names_the_repo_and_the_fix() -> None:
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(f"{SD_REPO}@v3"), family="sd15")
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith("model.base: ")
    assert f"{SD_REPO}@v3" in message
    assert "HF_HUB_OFFLINE" in message
    assert f"`hf download {SD_REPO} --revision v3 --include" in message
    assert str(cache_dir()) in message


def test_offline_incomplete_snapshot_names_the_missing_parts() -> None:
    files = sd15_pipeline()
    del files["unet/diffusion_pytorch_model.safetensors"]
    del files["feature_extractor/preprocessor_config.json"]
    cache_repo(SD_REPO, files)
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    message = str(info.value)
    assert "unet/ weights" in message
    assert "feature_extractor/" in message
    assert "HF_HUB_OFFLINE" in message


def test_a_repo_without_model_index_is_not_a_pipeline() -> None:
    cache_repo(SD_REPO, {"model.safetensors": b"x"})
    with pytest.raises(LaunchError, match="not a Diffusers model"):
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")


def test_family_mismatch_is_refused() -> None:
    cache_repo("org/tiny-xl", sdxl_pipeline())
    assert hub.resolve_model(parse_model_ref("org/tiny-xl"), family="sdxl").is_dir()
    with pytest.raises(LaunchError, match=r"an SDXL model but model\.family is 'sd15'"):
        hub.resolve_model(parse_model_ref("org/tiny-xl"), family="sd15")


# --- single files from the cache ------------------------------------------------------------


def test_single_file_becomes_a_real_file_with_its_suffix(tmp_path: Path) -> None:
    data = safetensors_bytes(tmp_path, SD15)
    snapshot = cache_repo("org/ckpts", {"sd/model.safetensors": data})
    ref = parse_model_ref("org/ckpts/sd/model.safetensors")
    path = hub.resolve_model(ref, family="sd15", progress=False)
    blob = (snapshot / "sd" / "model.safetensors").resolve()
    assert path.name == "model.safetensors"
    assert path.is_file()
    assert not path.is_symlink()
    assert path.samefile(blob)  # a hard link: no second copy on disk
    assert path.parent == cache_dir() / "models--org--ckpts" / "kohya-plan" / COMMIT / "sd"
    assert hub.resolve_model(ref, family="sd15") == path  # idempotent
    assert detect_family(path) == "sd15"


def test_single_file_family_mismatch_and_damage(tmp_path: Path) -> None:
    cache_repo("org/xl", {"xl.safetensors": safetensors_bytes(tmp_path, SDXL)})
    with pytest.raises(LaunchError, match=r"org/xl/xl\.safetensors is an SDXL model"):
        hub.resolve_model(parse_model_ref("org/xl/xl.safetensors"), family="sd15")
    cache_repo("org/bad", {"bad.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{"})
    with pytest.raises(LaunchError, match="damaged"):
        hub.resolve_model(parse_model_ref("org/bad/bad.safetensors"), family="sd15")


def test_single_file_offline_and_missing() -> None:
    cache_repo("org/ckpts", {"other.safetensors": b"x"})
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref("org/ckpts@v1/m.safetensors"), family="sd15")
    message = str(info.value)
    assert "m.safetensors" in message
    assert "`hf download org/ckpts m.safetensors --revision v1`" in message
    assert "HF_HUB_OFFLINE" in message


def test_loadable_file(tmp_path: Path) -> None:
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"x")
    assert hub.loadable_file(real) == real
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    assert hub.loadable_file(link) == real  # what sd-scripts would load, resolved for it
    odd = tmp_path / "odd.safetensors"
    odd.symlink_to(tmp_path / "weights-without-suffix")
    (tmp_path / "weights-without-suffix").write_bytes(b"x")
    with pytest.raises(LaunchError, match="point at the file itself"):
        hub.loadable_file(odd)


# --- choosing files in a repo ---------------------------------------------------------------

SD15_REPO_FILES = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-5-pruned.ckpt",
    "v1-5-pruned.safetensors",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/flax_model.msgpack",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/model.onnx",
    "vae/config.json",
    "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.safetensors",
]
SD15_COMPONENTS = ["feature_extractor", "scheduler", "text_encoder", "unet", "vae"]
SD15_SELECTED = [
    "model_index.json",
    "feature_extractor/preprocessor_config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
]


def test_select_pipeline_files_prefers_plain_safetensors() -> None:
    assert hub.select_pipeline_files(SD15_REPO_FILES, SD15_COMPONENTS) == SD15_SELECTED


def test_components_exclude_what_sd_scripts_does_not_load() -> None:
    index = json.loads(sd15_pipeline()["model_index.json"])
    assert hub.pipeline_components(index) == SD15_COMPONENTS
    xl = json.loads(sdxl_pipeline()["model_index.json"])
    assert "tokenizer_2" in hub.pipeline_components(xl)
    assert "tokenizer" not in hub.pipeline_components(xl)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            ["unet/config.json", "unet/diffusion_pytorch_model.bin"],
            ["unet/diffusion_pytorch_model.bin"],
        ),
        (
            [
                "unet/config.json",
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "unet/x.non_ema.bin",
            ],
            ["unet/diffusion_pytorch_model.fp16.safetensors"],
        ),
        (
            [
                "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors.index.json",
                "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
                "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
                "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
                "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
            ],
            [
                "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
                "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
                "unet/diffusion_pytorch_model.safetensors.index.json",
            ],
        ),
    ],
)
def test_select_pipeline_files_fallbacks_and_shards(files: list[str], expected: list[str]) -> None:
    assert hub.select_pipeline_files(files, ["unet"]) == [
        "model_index.json",
        "unet/config.json",
        *expected,
    ]


# --- online paths, with huggingface_hub's functions replaced --------------------------------


class FakeHub:
    """list_repo_files / hf_hub_download / snapshot_download over a prepared cache."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, repo_files: list[str]) -> None:
        self.repo_files = repo_files
        self.allow_patterns: list[str] | None = None
        self.downloads: list[str] = []
        self.list_error: Exception | None = None
        self.snapshot_error: Exception | None = None
        go_online(monkeypatch)
        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", self.list_repo_files)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", self.hf_hub_download)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(
            huggingface_hub.HfApi, "parse_safetensors_file_metadata", self.parse_metadata
        )

    def list_repo_files(self, repo_id: str, *, revision: str | None = None, **kw: Any) -> list[str]:
        if self.list_error is not None:
            raise self.list_error
        return self.repo_files

    def hf_hub_download(self, repo_id: str, filename: str, **kwargs: Any) -> str:
        assert "token" not in kwargs  # huggingface_hub finds the token itself
        self.downloads.append(filename)
        ref = HubRef(repo_id, kwargs.get("revision"), filename)
        path = hub.cached_model(ref, Path(kwargs["cache_dir"]))
        if path is None:
            raise make_error("EntryNotFoundError", f"{filename} missing")
        return str(path)

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        if self.snapshot_error is not None:
            raise self.snapshot_error
        self.allow_patterns = kwargs["allow_patterns"]
        path = hub.cached_model(HubRef(repo_id, kwargs.get("revision")), Path(kwargs["cache_dir"]))
        assert path is not None
        return str(path)

    def parse_metadata(self, repo_id: str, filename: str, **kwargs: Any) -> Any:
        raise make_error("HfHubHTTPError", "ranged reads unavailable in this test")


def test_online_download_asks_only_for_what_sd_scripts_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snapshot = cache_repo(SD_REPO, sd15_pipeline())
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    path = hub.resolve_model(parse_model_ref(SD_REPO), family="sd15", progress=False)
    assert path == snapshot
    assert fake.allow_patterns == SD15_SELECTED
    assert fake.downloads == ["model_index.json", "text_encoder/config.json"]


def test_online_family_is_checked_before_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_repo(SD_REPO, sdxl_pipeline())
    fake = FakeHub(monkeypatch, [*sdxl_pipeline()])
    with pytest.raises(LaunchError, match="SDXL"):
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    assert fake.allow_patterns is None  # snapshot_download never called


def test_online_repo_without_model_index_lists_its_checkpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeHub(monkeypatch, ["README.md", "a.safetensors", "b/c.ckpt"])
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    assert f"{SD_REPO}/a.safetensors, {SD_REPO}/b/c.ckpt" in str(info.value)


def test_network_down_falls_back_to_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    fake.list_error = ConnectionError("Failed to resolve 'huggingface.co'")
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    message = str(info.value)
    assert "could not be reached (ConnectionError: Failed to resolve 'huggingface.co')" in message
    assert "HTTPS_PROXY" in message
    snapshot = cache_repo(SD_REPO, sd15_pipeline())
    assert hub.resolve_model(parse_model_ref(SD_REPO), family="sd15") == snapshot


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            "GatedRepoError",
            "is a gated model: accept its licence on https://huggingface.co/org/tiny-sd",
        ),
        ("GatedRepoError", "`hf auth login` or set HF_TOKEN"),
        ("RepositoryNotFoundError", "was not found on the Hugging Face Hub. Check the spelling"),
        ("RevisionNotFoundError", "revision 'nope' does not exist in org/tiny-sd"),
        ("LocalEntryNotFoundError", "is not in the Hugging Face cache"),
        ("HfHubHTTPError", "the Hugging Face Hub failed"),
    ],
)
def test_hub_errors_become_launch_errors(
    monkeypatch: pytest.MonkeyPatch, error: str, words: str
) -> None:
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    fake.snapshot_error = make_error(error, f"server says {FAKE_TOKEN}")
    files = sd15_pipeline()
    cache_repo(
        SD_REPO,
        {k: files[k] for k in ("model_index.json", "text_encoder/config.json")},
        refs=("nope",),
    )
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(f"{SD_REPO}@nope"), family="sd15")
    assert words in str(info.value)
    assert FAKE_TOKEN not in str(info.value)


def test_offline_mode_seen_only_by_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE read by huggingface_hub at import, not by us: still the offline advice."""
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    fake.list_error = make_error("OfflineModeIsEnabled", "offline")
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    assert "HF_HUB_OFFLINE is set" in str(info.value)
    cache_repo(SD_REPO, {"model_index.json": sd15_pipeline()["model_index.json"]})
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")
    assert "lacks feature_extractor/, scheduler/" in str(info.value)
    assert "HF_HUB_OFFLINE is set" in str(info.value)


def test_http_401_asks_to_log_in(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    error = make_error("HfHubHTTPError", "401 Client Error")
    error.response = SimpleNamespace(status_code=401)  # type: ignore[attr-defined]
    fake.list_error = error
    with pytest.raises(LaunchError, match=r"refused access to org/tiny-sd \(HTTP 401\); log in"):
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")


def test_online_single_file_missing_in_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeHub(monkeypatch, [])
    with pytest.raises(LaunchError) as info:
        hub.resolve_model(parse_model_ref("org/ckpts/nope.safetensors"), family="sd15")
    assert "org/ckpts/nope.safetensors does not exist on the Hub" in str(info.value)
    assert "https://huggingface.co/org/ckpts/tree/main" in str(info.value)


def test_online_single_file_header_is_checked_before_downloading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeHub(monkeypatch, [])
    header = SimpleNamespace(
        tensors={k: SimpleNamespace(shape=v) for k, v in SDXL.items()}, metadata={}
    )
    monkeypatch.setattr(
        huggingface_hub.HfApi, "parse_safetensors_file_metadata", lambda *a, **k: header
    )
    with pytest.raises(LaunchError, match="is an SDXL model"):
        hub.resolve_model(parse_model_ref("org/xl/big.safetensors"), family="sd15")
    assert fake.downloads == []


def test_vae_from_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = cache_repo(
        "org/vae", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"v"}
    )
    assert hub.resolve_vae(parse_model_ref("org/vae")) == snapshot  # offline, cached
    fake = FakeHub(
        monkeypatch,
        [
            "config.json",
            "diffusion_pytorch_model.bin",
            "diffusion_pytorch_model.safetensors",
            "README.md",
        ],
    )
    assert hub.resolve_vae(parse_model_ref("org/vae"), progress=False) == snapshot
    assert fake.allow_patterns == ["config.json", "diffusion_pytorch_model.safetensors"]
    fake.repo_files = [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "unet/config.json",
    ]
    hub.resolve_vae(parse_model_ref("org/vae"))
    assert fake.allow_patterns == [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_unexpected_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHub(monkeypatch, SD15_REPO_FILES)
    fake.list_error = KeyError("a bug")
    with pytest.raises(KeyError):
        hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")


# --- tokenizers -----------------------------------------------------------------------------

TOY_VOCAB = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "photo</w>": 3, "of</w>": 4}
SPECIAL = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}


def tokenizer_files(*, full: bool = True) -> dict[str, bytes]:
    """A toy CLIP tokenizer (real file formats, five-word vocabulary)."""
    files = {
        "vocab.json": json.dumps(TOY_VOCAB).encode(),
        "merges.txt": b"#version: 0.2\n",
        "tokenizer_config.json": json.dumps(
            {**SPECIAL, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}
        ).encode(),
    }
    if full:
        files["special_tokens_map.json"] = json.dumps(SPECIAL).encode()
    return files


def test_tokenizer_is_copied_where_sd_scripts_looks(tmp_path: Path) -> None:
    cache_repo("openai/clip-vit-large-patch14", {**tokenizer_files(), "config.json": b"{}"})
    target = tmp_path / "tok"
    assert hub.resolve_tokenizers("sd15", target, progress=False) == target
    folder = target / "openai_clip-vit-large-patch14"
    assert sorted(p.name for p in folder.iterdir()) == sorted(tokenizer_files())
    for name, data in tokenizer_files().items():
        assert not (folder / name).is_symlink()
        assert (folder / name).read_bytes() == data
    assert [p.name for p in target.iterdir()] == ["openai_clip-vit-large-patch14"]  # no leftovers


def test_a_ready_tokenizer_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tok" / "openai_clip-vit-large-patch14"
    folder.mkdir(parents=True)
    for name, data in tokenizer_files(full=False).items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", None)  # any call would fail
    hub.resolve_tokenizers("sd15", tmp_path / "tok")
    assert sorted(p.name for p in folder.iterdir()) == sorted(tokenizer_files(full=False))


def test_an_incomplete_tokenizer_folder_is_filled_not_overwritten(tmp_path: Path) -> None:
    cache_repo("openai/clip-vit-large-patch14", tokenizer_files())
    folder = tmp_path / "tok" / "openai_clip-vit-large-patch14"
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text('{"mine": 0}')
    hub.resolve_tokenizers("sd15", tmp_path / "tok")
    assert (folder / "vocab.json").read_text() == '{"mine": 0}'
    assert hub.tokenizer_ready(folder)


def test_sdxl_needs_both_tokenizers_and_names_the_missing_one(tmp_path: Path) -> None:
    cache_repo("openai/clip-vit-large-patch14", tokenizer_files())
    with pytest.raises(LaunchError) as info:
        hub.resolve_tokenizers("sdxl", tmp_path / "tok")
    message = str(info.value)
    assert message.startswith("tokenizer laion/CLIP-ViT-bigG-14-laion2B-39B-b160k: vocab.json")
    assert "`hf download laion/CLIP-ViT-bigG-14-laion2B-39B-b160k vocab.json merges.txt" in message
    assert "HF_HUB_OFFLINE" in message
    assert not (tmp_path / "tok" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k").exists()
    assert hub.tokenizer_ready(tmp_path / "tok" / "openai_clip-vit-large-patch14")
    cache_repo("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", tokenizer_files(full=False))
    hub.resolve_tokenizers("sdxl", tmp_path / "tok")
    assert hub.tokenizer_ready(tmp_path / "tok" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k")


def test_sd2_tokenizer_comes_from_the_sd2_repo_subfolder(tmp_path: Path) -> None:
    files = {f"tokenizer/{name}": data for name, data in tokenizer_files().items()}
    cache_repo("stabilityai/stable-diffusion-2", files)
    hub.resolve_tokenizers("sd2", tmp_path / "tok")
    assert hub.tokenizer_ready(tmp_path / "tok" / "stabilityai_stable-diffusion-2")


def test_unknown_family_has_no_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no tokenizer"):
        hub.resolve_tokenizers("sd3", tmp_path)


# --- secrets and progress bars --------------------------------------------------------------


def test_the_token_never_appears_anywhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cache_repo(SD_REPO, sd15_pipeline())
    cache_repo("openai/clip-vit-large-patch14", tokenizer_files())
    messages = [
        str(hub.resolve_model(parse_model_ref(SD_REPO), family="sd15")),
        str(hub.resolve_tokenizers("sd15", tmp_path / "tok")),
    ]
    attempts: list[Callable[[], object]] = [
        lambda: hub.resolve_model(parse_model_ref("org/missing"), family="sd15"),
        lambda: hub.resolve_model(parse_model_ref("org/missing/x.safetensors"), family="sd15"),
        lambda: hub.resolve_tokenizers("sdxl", tmp_path / "tok"),
    ]
    for attempt in attempts:
        with pytest.raises(LaunchError) as info:
            attempt()
        messages.append(str(info.value))
    out, err = capfd.readouterr()
    seen = "\n".join([*messages, out, err, caplog.text])
    assert FAKE_TOKEN not in seen
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    assert hub.scrub(f"token={FAKE_TOKEN}") == "token=***"
    assert hub.scrub("Bearer hf_abcdefgh12345678") == "Bearer hf_***"


def test_progress_false_restores_the_progress_bar_setting() -> None:
    cache_repo(SD_REPO, sd15_pipeline())
    before = are_progress_bars_disabled()
    hub.resolve_model(parse_model_ref(SD_REPO), family="sd15", progress=False)
    assert are_progress_bars_disabled() == before


# --- the copied tokenizer, loaded by sd-scripts itself --------------------------------------

LOAD_WITH_SD_SCRIPTS = textwrap.dedent(
    """
    import sys
    from library.strategy_sd import SdTokenizeStrategy
    from library.strategy_sdxl import SdxlTokenizeStrategy
    sd = SdTokenizeStrategy(v2=False, max_length=None, tokenizer_cache_dir=sys.argv[1])
    xl = SdxlTokenizeStrategy(max_length=None, tokenizer_cache_dir=sys.argv[1])
    ids = sd.tokenize("a a a")[0]  # the toy vocabulary has no merges: one-letter words only
    assert sd.tokenizer.model_max_length == 77, sd.tokenizer.model_max_length
    assert sd.tokenizer.pad_token_id == sd.tokenizer.eos_token_id  # the SD1 code path
    assert tuple(ids.shape) == (1, 1, 77), ids.shape  # one prompt, one 77-token chunk
    assert ids[0, 0, :5].tolist() == [0, 2, 2, 2, 1], ids[0, 0, :5].tolist()
    assert len(xl.tokenize("a photo of")) == 2
    print("ok")
    """
)


@pytest.mark.sdscripts
def test_sd_scripts_loads_the_copied_tokenizers_offline(tmp_path: Path) -> None:
    python, sd_scripts = sdlab.sd_python(), sdlab.sd_scripts_dir()
    if python is None or sd_scripts is None:
        pytest.skip(str(sdlab.skip_reason()))
    cache_repo("openai/clip-vit-large-patch14", tokenizer_files())
    cache_repo("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", tokenizer_files())
    target = hub.resolve_tokenizers("sdxl", tmp_path / "tok")
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf-home"))
    result = subprocess.run(
        [str(python), "-c", LOAD_WITH_SD_SCRIPTS, str(target)],
        cwd=sd_scripts,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
    assert "load tokenizer from cache" in result.stdout + result.stderr
