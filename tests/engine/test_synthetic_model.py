"""The synthetic speed-test model is a real GGUF: Hearth's header reader, its chat template and
the real llama.cpp (through the worker) all take it, and it generates."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gguf")

from desktop.bench.synthetic_model import Shape, main, read_tokenizer, write_model  # noqa: E402
from desktop.core.chat.templates import choose_format, render_parts  # noqa: E402
from desktop.core.engine.client import EngineClient, LoadOptions  # noqa: E402
from desktop.core.models.gguf import read_gguf  # noqa: E402

TINY = Shape(n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=256)


def test_tokenizer_file_then_model_loads_and_generates(tmp_path: Path, smollm_path: Path) -> None:
    tokenizer = tmp_path / "tok.gguf"
    assert main(["tokenizer", str(smollm_path), str(tokenizer)]) == 0
    source = read_gguf(smollm_path)
    # Every tokenizer.* key of the source, unchanged (Hearth's reader refuses the file itself:
    # it is no model).
    assert read_tokenizer(tokenizer) == read_tokenizer(smollm_path)
    assert tokenizer.stat().st_size < smollm_path.stat().st_size / 50  # no weights in it

    model = tmp_path / "tiny.gguf"
    params = write_model(tokenizer, model, TINY, seed=1)
    info = read_gguf(model)
    assert info.architecture == "llama" and info.block_count == 2
    assert info.get("llama.embedding_length") == 64
    assert info.get("llama.attention.head_count_kv") == 2
    assert info.chat_template == source.chat_template
    assert info.special_tokens == source.special_tokens
    n_vocab = info.get("llama.vocab_size")
    assert n_vocab == 49152  # SmolLM2's vocabulary
    per_layer = 2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 256  # norms, q/o, k/v, FFN
    assert params == n_vocab * 64 + 2 * per_layer + 64  # tied output: no output.weight

    fmt = choose_format(info.architecture, info.special_tokens, info.chat_template)
    client = EngineClient(tmp_path / "engine.log")
    try:
        loaded = client.load(LoadOptions(str(model), n_ctx=512))["info"]
        assert loaded["block_count"] == 2 and loaded["quantization"] == "F16"
        parts = render_parts(fmt, [{"role": "user", "content": "Hello"}])
        done = client.generate(parts, {"temperature": 0, "max_tokens": 8, "ignore_eos": True,
                                       "speculative": False}).wait()
        assert done["completion_tokens"] == 8 and done["stop_reason"] == "length"
    finally:
        client.shutdown()


def test_model_without_a_tokenizer_is_refused(tmp_path: Path, smollm_path: Path) -> None:
    from gguf import GGUFWriter

    tokenizer = tmp_path / "tok.gguf"
    main(["tokenizer", str(smollm_path), str(tokenizer)])
    # A GGUF with no tokenizer.ggml.tokens, then a shape whose heads do not divide the width.

    empty = tmp_path / "empty.gguf"
    writer = GGUFWriter(empty, "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    assert main(["model", str(empty), str(tmp_path / "x.gguf")]) == 1
    assert not (tmp_path / "x.gguf").exists()
    assert main(["model", str(tokenizer), str(tmp_path / "y.gguf"), "--n-embd", "62"]) == 1
