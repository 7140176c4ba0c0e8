"""Vision models as pairs of files: Hub listings (against the local fake Hub), downloads that
fetch and verify both files, the library's pairing, and scanning other apps' folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.models import hub
from desktop.core.models.download import DownloadError
from desktop.core.models.download_queue import DownloadJob, run_job
from desktop.core.models.scan import scan, with_projectors
from desktop.core.models.vision_pairs import best_projector, is_projector
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf
from tests.vision_files import write_tiny_mmproj

REPO = "acme/tiny-vlm-GGUF"
FAST = {"backoff_s": 0.01, "retries": 2}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    server = FakeHub()
    model = write_small_gguf(tmp_path / "model.gguf")  # n_embd 8
    server.add_file(REPO, "tiny-vlm-Q4_K_M.gguf", model)
    server.add_file(REPO, "tiny-vlm-Q8_0.gguf", model)
    server.add_file(REPO, "mmproj-tiny-vlm-f32.gguf",
                    write_tiny_mmproj(tmp_path / "p32.gguf", text_embd=8, seed=1))
    server.add_file(REPO, "mmproj-tiny-vlm-f16.gguf",
                    write_tiny_mmproj(tmp_path / "p16.gguf", text_embd=8, seed=2))
    server.add_file("acme/text-GGUF", "text-Q4_0.gguf", model)
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    yield server
    server.stop()


def test_listing_pairs_each_model_with_its_projector(fake_hub: FakeHub) -> None:
    listing = hub.repo_files(REPO)
    assert listing.projectors == ["mmproj-tiny-vlm-f16.gguf", "mmproj-tiny-vlm-f32.gguf"]
    assert sorted(m.name for m in listing.models) == ["tiny-vlm-Q4_K_M.gguf",
                                                      "tiny-vlm-Q8_0.gguf"]  # no mmproj "model"
    for model in listing.models:
        described = hub.describe(model)
        assert described["vision"] and described["mmproj"] == "mmproj-tiny-vlm-f16.gguf"
        assert model.files == [model.name, "mmproj-tiny-vlm-f16.gguf"] and not model.split
        assert model.size == model.sizes[model.name] + model.sizes["mmproj-tiny-vlm-f16.gguf"]
        assert model.sha256["mmproj-tiny-vlm-f16.gguf"]
    text = hub.repo_files("acme/text-GGUF").models[0]
    assert text.mmproj is None and text.files == ["text-Q4_0.gguf"]


def test_download_fetches_and_verifies_both_and_pairs_them(fake_hub: FakeHub,
                                                           data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        model = next(m for m in hub.repo_files(REPO).models if m.quant == "Q4_K_M")
        path = run_job(DownloadJob(REPO, model), ctx.models_dir, ctx.library, None, **FAST)
        projector = path.parent / "mmproj-tiny-vlm-f16.gguf"
        assert projector.is_file()
        entry = ctx.library.find(path)
        assert entry is not None and entry.settings["mmproj"] == str(projector)
        assert entry.as_dict()["mmproj"] == str(projector)  # the library shows the pair
    finally:
        ctx.close()


def test_a_corrupt_projector_fails_the_download(fake_hub: FakeHub, data_dir: Path) -> None:
    fake_hub.corrupt.add("mmproj-tiny-vlm-f16.gguf")
    ctx = AppContext(data_dir)
    try:
        model = next(m for m in hub.repo_files(REPO).models if m.quant == "Q8_0")
        with pytest.raises(DownloadError):
            run_job(DownloadJob(REPO, model), ctx.models_dir, ctx.library, None, **FAST)
        assert not (ctx.models_dir / REPO / "mmproj-tiny-vlm-f16.gguf").exists()
        assert ctx.library.find(ctx.models_dir / REPO / "tiny-vlm-Q8_0.gguf") is None
    finally:
        ctx.close()


def test_scanning_another_apps_folder_finds_the_pair(tmp_path: Path, gemma_path: Path,
                                                     data_dir: Path) -> None:
    folder = tmp_path / "lmstudio" / "acme" / "gemma-vision"
    folder.mkdir(parents=True)
    (folder / "gemma-3-270m-Q4_K_M.gguf").symlink_to(gemma_path)
    projector = write_tiny_mmproj(folder / "mmproj-gemma-F16.gguf")  # width 640: Gemma's
    write_tiny_mmproj(tmp_path / "lmstudio" / "mmproj-stray-f16.gguf")  # another folder
    found = with_projectors(scan({"LM Studio": [tmp_path / "lmstudio"]}))
    assert [(app, p.name, m) for app, p, m in found] == [
        ("LM Studio", "gemma-3-270m-Q4_K_M.gguf", projector)]
    ctx = AppContext(data_dir)
    try:
        entry = ctx.library.add(found[0][1], source="LM Studio")
        assert entry.settings["mmproj"] == str(projector)
    finally:
        ctx.close()


def test_a_projector_of_another_width_is_not_paired(tmp_path: Path, gemma_path: Path,
                                                    data_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "gemma.gguf").symlink_to(gemma_path)
    write_tiny_mmproj(folder / "mmproj-smol-f16.gguf", text_embd=576)  # SmolLM2's width
    ctx = AppContext(data_dir)
    try:
        assert "mmproj" not in ctx.library.add(folder / "gemma.gguf").settings
    finally:
        ctx.close()


def test_projector_names_and_precision() -> None:
    assert is_projector("sub/mmproj-model-f16.gguf") and not is_projector("model-Q4_0.gguf")
    choices = ["a/mmproj-x-f32.gguf", "a/mmproj-x-Q8_0.gguf", "a/mmproj-x-BF16.gguf",
               "b/mmproj-x-f16.gguf"]
    assert best_projector("a/model-Q4_K_M.gguf", choices) == "a/mmproj-x-BF16.gguf"
    assert best_projector("b/model.gguf", choices) == "b/mmproj-x-f16.gguf"
    assert best_projector("c/model.gguf", choices) is None
