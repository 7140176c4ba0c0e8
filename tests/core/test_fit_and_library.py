"""Fit estimates from the real headers, quant parsing, scanning other apps' folders, the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.models import token as token_store
from desktop.core.models.fit import (
    GB,
    Memory,
    estimate_from_header,
    estimate_from_size,
    judge,
    recommend,
)
from desktop.core.models.gguf import read_gguf
from desktop.core.models.quant import group_files, quality_note, quant_label
from desktop.core.models.scan import scan
from tests.conftest import copy_model
from tests.gguf_files import write_small_gguf


def test_estimate_from_the_real_gemma_header(gemma_path: Path) -> None:
    estimate = estimate_from_header(read_gguf(gemma_path), 4096)
    # 18 layers x 4096 tokens x 1 KV head x (256 + 256) x 2 bytes (f16)
    assert estimate.kv_cache == 18 * 4096 * 1 * 512 * 2
    assert estimate.weights == gemma_path.stat().st_size and estimate.exact
    # Asking for more than the model supports is capped at its trained context.
    assert estimate_from_header(read_gguf(gemma_path), 10**6).n_ctx == 32768


def test_estimate_from_the_real_embedding_header(embed_model_path: Path) -> None:
    estimate = estimate_from_header(read_gguf(embed_model_path), 512)
    # BERT: 6 layers x 512 tokens x 12 heads x (32 + 32) x 2 bytes
    assert estimate.kv_cache == 6 * 512 * 12 * 64 * 2
    assert estimate.total > estimate.weights


def test_size_approximation_is_close_to_the_header(gemma_path: Path) -> None:
    exact = estimate_from_header(read_gguf(gemma_path), 4096)
    approx = estimate_from_size(gemma_path.stat().st_size, "Q4_K_M", 4096)
    assert 0.5 < approx.kv_cache / exact.kv_cache < 2.0 and not approx.exact


def test_labels_for_each_kind_of_machine() -> None:
    estimate = estimate_from_size(int(4.9 * GB), "Q4_K_M", 8192)
    big_gpu = Memory(64 * GB, 48 * GB, "RTX", 24 * GB, 22 * GB)
    small_gpu = Memory(32 * GB, 24 * GB, "GTX", 4 * GB, 3 * GB)
    laptop = Memory(16 * GB, 10 * GB)
    tiny = Memory(4 * GB, 2 * GB)
    assert judge(estimate, big_gpu).label == "gpu_full"
    partial = judge(estimate, small_gpu, layers=32)
    assert partial.label == "gpu_partial" and 0 < partial.gpu_layers < 32
    assert judge(estimate, laptop).label == "cpu"
    too_large = judge(estimate, tiny)
    assert too_large.label == "too_large" and "GB" in too_large.text
    assert too_large.as_dict()["need_bytes"] == estimate.total


def test_recommend_the_best_quant_that_fits() -> None:
    memory = Memory(16 * GB, 10 * GB)
    sizes = {"Q2_K": 3.0, "Q4_K_M": 4.9, "Q6_K": 6.6, "Q8_0": 8.5, "F16": 16.1}
    candidates = [(f"m-{q}.gguf", q, judge(estimate_from_size(int(s * GB), q, 4096), memory))
                  for q, s in sizes.items()]
    assert recommend(candidates) == "m-Q6_K.gguf"
    assert recommend([c for c in candidates if c[1] == "F16"]) is None


def test_quant_labels_and_notes() -> None:
    assert quant_label("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_label("qwen2.5-7b-instruct-iq2_xxs.gguf") == "IQ2_XXS"
    assert quant_label("phi-4-BF16-00001-of-00002.gguf") == "BF16"
    assert quant_label("mmproj-model.gguf") is None
    assert "Recommended" in quality_note("Q4_K_M")
    groups = group_files([("x-Q8_0-00001-of-00003.gguf", 1, None),
                          ("x-Q8_0-00002-of-00003.gguf", 1, None)])
    assert groups == []  # an incomplete split set is not offered


def test_scan_finds_models_of_other_apps(tmp_path: Path, gemma_path: Path) -> None:
    lm = tmp_path / "lmstudio" / "models" / "google" / "gemma"
    small = write_small_gguf(tmp_path / "small.gguf")
    copy_model(gemma_path, lm)
    ollama = tmp_path / "ollama" / "blobs"
    ollama.mkdir(parents=True)
    (ollama / "sha256-abc").write_bytes(gemma_path.read_bytes()[:2_000_000])
    (ollama / "sha256-notgguf").write_bytes(b"\0" * 2_000_000)
    hf = tmp_path / "hf" / "hub" / "models--a--b" / "snapshots" / "123"
    hf.mkdir(parents=True)
    (hf / "b-Q4_0.gguf").symlink_to(gemma_path)
    found = scan({"LM Studio": [tmp_path / "lmstudio" / "models"], "Ollama": [ollama],
                  "Hugging Face cache": [tmp_path / "hf" / "hub"], "GPT4All": [small.parent]},
                 min_size=1_000_000)
    apps = sorted(app for app, _ in found)
    assert apps == ["Hugging Face cache", "LM Studio", "Ollama"]
    assert any(p.name == "b-Q4_0.gguf" for _, p in found)  # the readable name, not the blob
    assert any(p.name == "sha256-abc" for _, p in found)
    assert not any(p.name == "sha256-notgguf" for _, p in found)


def test_token_without_a_keychain_stays_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    monkeypatch.setattr(token_store, "_session_token", None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert token_store.set_token("hf_abc") is False  # told: kept for this session only
    assert token_store.get_token() == "hf_abc"
    token_store.forget_token()
    assert token_store.get_token() is None
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")  # as every Hugging Face tool reads it
    assert token_store.get_token() == "hf_from_env"
    token_store.set_token("hf_typed")
    assert token_store.get_token() == "hf_typed"  # the one entered in Hearth comes first
    token_store.forget_token()


def test_hanging_keychain_does_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import keyring

    class Hangs:
        def get_password(self, *args: object) -> None:
            threading.Event().wait(30)

        def set_password(self, *args: object) -> None:
            threading.Event().wait(30)

    monkeypatch.setattr(keyring, "get_keyring", lambda: Hangs())
    monkeypatch.setattr(keyring, "get_password", Hangs().get_password)
    monkeypatch.setattr(keyring, "set_password", Hangs().set_password)
    monkeypatch.setattr(token_store, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(token_store, "_session_token", None)
    assert token_store.get_token() is None
    assert token_store.set_token("hf_x") is False


def test_gpu_layer_plan_from_free_vram(gemma_path: Path) -> None:
    from desktop.core.models.fit import gpu_layer_plan

    info = read_gguf(gemma_path)
    layers, why = gpu_layer_plan(info, 4096, Memory(32 * GB, 24 * GB, "RTX", 8 * GB, 7 * GB))
    assert layers == 19 and "all 19 layers" in why  # 18 blocks + output
    layers, why = gpu_layer_plan(info, 4096, Memory(32 * GB, 24 * GB, "Tiny", GB // 2,
                                                    int(0.5 * GB)))
    assert 0 < layers < 19 and "the rest on the CPU" in why
    assert gpu_layer_plan(info, 4096, Memory(32 * GB, 24 * GB)) == (
        0, "no GPU memory detected: running on the CPU")


def test_scan_looks_where_each_app_keeps_models(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from desktop.core.models.scan import known_locations

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama-models"))
    places = known_locations()
    assert set(places) == {"LM Studio", "GPT4All", "Jan", "Ollama", "Hugging Face cache"}
    assert places["Hugging Face cache"] == [tmp_path / "hub-cache"]
    assert places["Ollama"][0] == tmp_path / "ollama-models" / "blobs"
    assert tmp_path / ".lmstudio" / "models" in places["LM Studio"]
    assert tmp_path / "jan" / "models" in places["Jan"]


def test_loading_a_model_too_large_for_the_machine_is_said(gemma_path: Path) -> None:
    from desktop.core.models.fit import Memory, too_large_warning
    from desktop.core.models.gguf import read_gguf

    info = read_gguf(gemma_path)
    small = Memory(total_ram=400 * 2**20, available_ram=150 * 2**20)
    warning = too_large_warning(info, 4096, small)
    assert warning is not None and warning.startswith("Too large for this machine")
    assert "very slow" in warning
    roomy = Memory(total_ram=16 * 2**30, available_ram=8 * 2**30)
    assert too_large_warning(info, 4096, roomy) is None
