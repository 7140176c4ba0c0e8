"""The recommended-models catalog: complete, pinned, and enforced on download (fake Hub)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.models.catalog import CatalogEntry, CatalogFile, find_entry, load_catalog
from desktop.core.models.download import DownloadError
from desktop.core.models.download_queue import DownloadJob, run_job
from desktop.core.models.quant import BITS_PER_WEIGHT
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf

REPO_ROOT = Path(__file__).resolve().parents[2]
GEMMA_REPO = "google/gemma-3-270m-GGUF"
GEMMA_FILE = "gemma-3-270m-Q4_K_M.gguf"
GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE = 253113024
PINNED = "0123456789abcdef0123456789abcdef01234567"
FAST = {"backoff_s": 0.01, "retries": 2}


SHA = re.compile(r"[0-9a-f]{64}")
# The usual memory tiers (GB of RAM or VRAM): each offers a general chat model, a reasoning
# model, a vision model and a coding model (the embedding model is small enough for all).
TIERS = (4, 8, 16, 32)
KINDS = {"chat", "reasoning", "vision", "code"}


def _roles(entry: CatalogEntry) -> set[str]:
    # Every chat model here chats; the reasoning ones can have their thinking turned off.
    return set(entry.tags) | {"code" if "coder" in entry.name.lower() else "chat"}


def test_shipped_catalog_is_complete_and_pinned() -> None:
    entries = load_catalog()
    assert {e.kind for e in entries} == {"chat", "embedding"}
    assert len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert SHA.fullmatch(entry.sha256), entry.name
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry.repo) and entry.file.endswith(".gguf")
        assert entry.license and entry.description and entry.size > 0
        model = entry.model_file()
        assert model.quant in BITS_PER_WEIGHT or model.quant == "MXFP4", entry.file
        assert model.revision == entry.revision and model.sha256[entry.file] == entry.sha256
        # A Q4 file holds about 4.5-5.5 bits per weight: the size must be plausible for the
        # parameter count in the name (catches a size typed for another file).
        params = re.search(r"(\d+(?:\.\d+)?)B-", entry.file)
        if params and model.quant and model.quant.startswith("Q4"):
            bits = entry.size * 8 / (float(params.group(1)) * 1e9)
            assert 4.0 < bits < 7.5, (entry.file, bits)
    sizes = sorted(e.size for e in entries if e.kind == "chat")
    assert sizes[0] < 3e9 and sizes[-1] > 15e9  # from laptops to 32 GB machines
    assert find_entry(entries[0].repo, entries[0].file) == entries[0]
    assert find_entry(entries[0].repo, "other.gguf") is None


def test_reasoning_and_vision_models_are_marked_and_projectors_pinned() -> None:
    entries = load_catalog()
    assert any(e.reasoning for e in entries) and any(e.vision for e in entries)
    for entry in entries:
        # A vision model always ships with its projector, and only a vision model has one.
        assert entry.vision == (entry.mmproj is not None), entry.name
        assert entry.kind == "chat" or not (entry.reasoning or entry.vision), entry.name
        if entry.mmproj is None:
            assert entry.model_file().files == [entry.file]
            continue
        proj = entry.mmproj
        assert "mmproj" in proj.file.lower() and proj.file.endswith(".gguf")
        assert SHA.fullmatch(proj.sha256) and proj.sha256 != entry.sha256, entry.name
        assert 3e8 < proj.size < 2e9, entry.name  # a projector is hundreds of MB
        model = entry.model_file()  # one download job: model first (it enters the library)
        assert model.files == [entry.file, proj.file] and model.name == entry.file
        assert model.mmproj == proj.file and not model.split
        assert model.sizes == {entry.file: entry.size, proj.file: proj.size}
        assert model.sha256 == {entry.file: entry.sha256, proj.file: proj.sha256}
        assert model.size == entry.download_size == entry.size + proj.size
        assert entry.as_dict()["mmproj"] == {"file": proj.file, "size": proj.size,
                                             "sha256": proj.sha256}
    raw = json.loads((REPO_ROOT / "resources" / "catalog.json").read_text(encoding="utf-8"))
    for item in raw["models"]:  # the schema: flags are real booleans, absent when false
        assert set(item) <= {"name", "repo", "file", "revision", "size", "sha256", "license",
                             "kind", "description", "reasoning", "vision", "mmproj"}
        assert all(item[flag] is True for flag in ("reasoning", "vision") if flag in item)


def test_every_memory_tier_has_each_kind_that_could_be_verified() -> None:
    entries = load_catalog()
    for tier in TIERS:
        # What fits the tier: weights (and projector) within about 70% of its memory, leaving
        # room for the context and the system.
        fitting = [e for e in entries if e.kind == "chat" and e.download_size < tier * 0.7e9]
        offered = set().union(*(_roles(e) for e in fitting))
        assert KINDS <= offered, (tier, KINDS - offered)
        # ...and something made for the tier, not only the small models that fit everywhere.
        biggest = max(e.download_size for e in fitting)
        assert biggest > tier * 0.25e9, tier
    assert [e.name for e in entries if e.kind == "embedding"] == ["nomic-embed-text v1.5"]


@pytest.fixture
def hub_url(monkeypatch: pytest.MonkeyPatch, gemma_path: Path, tmp_path: Path):  # noqa: ANN201
    server = FakeHub()
    server.add_file(GEMMA_REPO, GEMMA_FILE, gemma_path, sha256=GEMMA_SHA)
    # A file served under a recommended model's name that is not the recommended file.
    real = load_catalog()[0]
    server.add_file(real.repo, real.file, write_small_gguf(tmp_path / "impostor.gguf"))
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    yield server
    server.stop()


def _entry(sha256: str) -> CatalogEntry:
    return CatalogEntry(name="Gemma", repo=GEMMA_REPO, file=GEMMA_FILE, revision=PINNED,
                        size=GEMMA_SIZE, sha256=sha256, license="gemma", kind="chat",
                        description="test")


def test_catalog_download_fetches_the_pinned_commit(hub_url: FakeHub, data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        path = run_job(DownloadJob(GEMMA_REPO, _entry(GEMMA_SHA).model_file()), ctx.models_dir,
                       ctx.library, None, **FAST)
        assert path.stat().st_size == GEMMA_SIZE and ctx.library.find(path) is not None
        paths = [p for _, p, _ in hub_url.requests]
        assert paths == [f"/{GEMMA_REPO}/resolve/{PINNED}/{GEMMA_FILE}"]  # no listing call
    finally:
        ctx.close()


def test_file_not_matching_the_catalog_hash_is_refused(hub_url: FakeHub, data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        # The Hub would vouch for this file (its listing carries the served file's hash), but
        # the catalog's hash wins: the download is discarded and the library stays empty.
        with pytest.raises(DownloadError, match="failed verification"):
            run_job(DownloadJob(GEMMA_REPO, _entry("0" * 64).model_file()), ctx.models_dir,
                    ctx.library, None, **FAST)
        assert not any((ctx.models_dir / GEMMA_REPO).iterdir()) and ctx.library.list() == []
    finally:
        ctx.close()


def test_cli_recommended_and_pinned_pull(hub_url: FakeHub, data_dir: Path) -> None:
    base = [sys.executable, str(REPO_ROOT / "main.py"), "--data-dir", str(data_dir), "models"]
    listed = subprocess.run([*base, "recommended", "--json"], env={**os.environ},
                            capture_output=True, text=True, check=True)
    rows = json.loads(listed.stdout)
    assert [r["file"] for r in rows] == [e.file for e in load_catalog()]
    assert all(r["fit"]["label"] in ("cpu", "gpu_full", "gpu_partial", "too_large")
               and r["fit"]["need_bytes"] > r["size"] for r in rows)
    assert not hub_url.requests  # the list is offline

    first = load_catalog()[0]
    pulled = subprocess.run([*base, "pull", first.repo, first.file], env={**os.environ},
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 1
    assert f"not the {first.size:,} bytes expected" in pulled.stderr
    assert "Traceback" not in pulled.stderr
    assert [p for _, p, _ in hub_url.requests] == [
        f"/{first.repo}/resolve/{first.revision}/{first.file}"]
    folder = data_dir / "models" / first.repo
    assert not folder.exists() or not any(folder.iterdir())


def test_vision_download_fetches_and_verifies_the_projector(
        monkeypatch: pytest.MonkeyPatch, data_dir: Path, gemma_path: Path, tmp_path: Path) -> None:
    projector = write_small_gguf(tmp_path / "mmproj-model-f16.gguf", architecture="clip")
    proj_sha = hashlib.sha256(projector.read_bytes()).hexdigest()
    server = FakeHub()
    server.add_file(GEMMA_REPO, GEMMA_FILE, gemma_path, sha256=GEMMA_SHA)
    server.add_file(GEMMA_REPO, projector.name, projector, sha256=proj_sha)
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    ctx = AppContext(data_dir)
    try:
        def vision(sha: str) -> CatalogEntry:
            return CatalogEntry(
                name="Gemma", repo=GEMMA_REPO, file=GEMMA_FILE, revision=PINNED, size=GEMMA_SIZE,
                sha256=GEMMA_SHA, license="gemma", kind="chat", description="test", vision=True,
                mmproj=CatalogFile(projector.name, projector.stat().st_size, sha))

        # A projector that is not the pinned one is refused, like a model would be.
        with pytest.raises(DownloadError, match="failed verification"):
            run_job(DownloadJob(GEMMA_REPO, vision("0" * 64).model_file()), ctx.models_dir,
                    ctx.library, None, **FAST)
        assert ctx.library.list() == []
        assert not (ctx.models_dir / GEMMA_REPO / projector.name).exists()

        path = run_job(DownloadJob(GEMMA_REPO, vision(proj_sha).model_file()), ctx.models_dir,
                       ctx.library, None, **FAST)
        beside = path.parent / projector.name
        assert beside.read_bytes() == projector.read_bytes()  # both files, next to each other
        assert [e.path for e in ctx.library.list()] == [str(path)]  # the model, not the projector
        assert ctx.library.list()[0].settings["mmproj"] == str(beside)  # loaded with it
        assert {p for _, p, _ in server.requests} == {
            f"/{GEMMA_REPO}/resolve/{PINNED}/{GEMMA_FILE}",
            f"/{GEMMA_REPO}/resolve/{PINNED}/{projector.name}"}
    finally:
        ctx.close()
        server.stop()
