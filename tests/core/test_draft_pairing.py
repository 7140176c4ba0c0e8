"""Pairing a draft model with a target (speculative decoding): over real GGUF files with
vocabularies and real sizes in a real library, the smallest compatible model at most a quarter
of the target's size is chosen; "off" and an explicit path are honoured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.models.draft_pairing import (
    choose_draft,
    incompatibility,
    vocab_fingerprint,
)
from desktop.core.models.gguf import read_gguf

VOCAB = ["<unk>", "<s>", "</s>", *(f"tok{i}" for i in range(200))]
OTHER = ["<unk>", "<s>", "</s>", *(f"other{i}" for i in range(200))]


def _model(path: Path, rows: int, tokens: list[str] = VOCAB, *, kind: str = "llama",
           architecture: str = "llama", pooling: bool = False) -> Path:
    """A valid GGUF whose size comes from a real tensor of `rows` x 256 f16 (512 bytes each)."""
    writer = GGUFWriter(str(path), architecture)
    writer.add_name(path.stem)
    writer.add_context_length(256)
    writer.add_block_count(1)
    writer.add_embedding_length(256)
    writer.add_file_type(1)
    writer.add_tokenizer_model(kind)
    writer.add_token_list(tokens)
    if pooling:
        writer.add_uint32(f"{architecture}.pooling_type", 1)  # an embedding model: no drafts
    writer.add_tensor("token_embd.weight", np.ones((rows, 256), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def ctx(data_dir: Path):
    context = AppContext(data_dir)
    yield context
    context.close()


def test_the_smallest_compatible_model_a_quarter_of_the_size_is_paired(
        ctx: AppContext, tmp_path: Path) -> None:
    target = _model(tmp_path / "big-8b.gguf", 8192)  # ~4 MiB
    files = {
        "quarter": _model(tmp_path / "mid-2b.gguf", 2000),  # just under a quarter
        "smallest": _model(tmp_path / "small-0.5b.gguf", 500),
        "half": _model(tmp_path / "half-4b.gguf", 4096),  # compatible but too large
        "other vocab": _model(tmp_path / "other-0.1b.gguf", 100, OTHER),
        "other kind": _model(tmp_path / "bpe-0.1b.gguf", 100, kind="gpt2"),
        "embedding": _model(tmp_path / "embed-0.1b.gguf", 100, pooling=True),
        "projector": _model(tmp_path / "mmproj-big-0.1b.gguf", 100),
    }
    for path in [target, *files.values()]:
        ctx.library.add(path)
    service = ChatService(ctx)
    assert service._draft_model(str(target), {}) == str(files["smallest"])
    # Without the smallest, the next smallest compatible one under a quarter.
    ctx.library.remove(str(files["smallest"]))
    assert service._draft_model(str(target), {"draft_model": "auto"}) == str(files["quarter"])
    ctx.library.remove(str(files["quarter"]))
    assert service._draft_model(str(target), {}) is None  # only misfits are left
    # A small model never gets a draft: nothing is a quarter of its size.
    assert service._draft_model(str(files["half"]), {}) is None

    info = {name: read_gguf(path) for name, path in files.items()}
    assert vocab_fingerprint(target) == vocab_fingerprint(files["half"])
    assert incompatibility(read_gguf(target), info["half"]) is None
    why = incompatibility(read_gguf(target), info["other vocab"])
    assert why == ("other-0.1b.gguf cannot draft for big-8b.gguf: their vocabularies differ "
                   "(the same size but different tokens), so the model runs without a draft "
                   "model.")
    assert "a gpt2 vocabulary of 203 tokens against a llama vocabulary of 203 tokens" in \
        str(incompatibility(read_gguf(target), info["other kind"]))


def test_off_and_an_explicit_path_are_honoured(ctx: AppContext, tmp_path: Path) -> None:
    target = _model(tmp_path / "big.gguf", 4096)
    small = _model(tmp_path / "small.gguf", 256)
    chosen = _model(tmp_path / "chosen.gguf", 1024)  # not the smallest: chosen by the user
    for path in (target, small, chosen):
        ctx.library.add(path)
    service = ChatService(ctx)
    assert service._draft_model(str(target), {"draft_model": "off"}) is None
    assert service._draft_model(str(target), {"draft_model": str(chosen)}) == str(chosen)
    # Drafting turned off for the model: no draft model is loaded either.
    assert service._draft_model(str(target), {"speculative": False}) is None
    # The app-wide setting applies where the model has none of its own.
    ctx.settings.set("sampling", {**ctx.settings.get("sampling"), "draft_model": "off"})
    assert service._draft_model(str(target), {}) is None
    assert service._draft_model(str(target), {"draft_model": "auto"}) == str(small)
    # Pure pairing, without a library: a path is passed on as given (the worker checks it).
    assert choose_draft(target, "~/models/x.gguf", []) == str(Path.home() / "models/x.gguf")
    assert choose_draft(target, 42, [(str(small), {})]) == str(small)  # a damaged value: auto
