"""The recommended-models catalog: complete, pinned, and enforced on download (fake Hub)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.models.catalog import CatalogEntry, find_entry, load_catalog
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


def test_shipped_catalog_is_complete_and_pinned() -> None:
    entries = load_catalog()
    assert {e.kind for e in entries} == {"chat", "embedding"}
    assert sum(e.kind == "chat" for e in entries) >= 3  # chat models of a few sizes
    assert len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry.repo) and entry.file.endswith(".gguf")
        assert entry.license and entry.description
        model = entry.model_file()
        assert model.quant in BITS_PER_WEIGHT, entry.file
        # A Q4 file holds about 4.5-5 bits per weight: the size must be plausible for the
        # parameter count in the name (catches a size typed for another file).
        params = re.search(r"(\d+(?:\.\d+)?)B-", entry.file)
        if params:
            bits = entry.size * 8 / (float(params.group(1)) * 1e9)
            assert 4.0 < bits < 7.5, (entry.file, bits)
    sizes = sorted(e.size for e in entries if e.kind == "chat")
    assert sizes[0] < 1.5e9 and sizes[-1] > 4e9  # from laptops to GPU machines
    assert find_entry(entries[0].repo, entries[0].file) == entries[0]
    assert find_entry(entries[0].repo, "other.gguf") is None


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
