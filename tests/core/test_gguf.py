from __future__ import annotations

import struct
from pathlib import Path

import pytest

from desktop.core.errors import ModelFileError
from desktop.core.models.gguf import read_gguf
from tests.gguf_files import header, kv_string, write_small_gguf


def test_reads_the_real_gemma_header(gemma_path: Path) -> None:
    info = read_gguf(gemma_path)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == 32768
    assert info.block_count == 18
    assert info.chat_template is None  # a base model: the built-in template case
    assert 250e6 < info.parameter_count < 300e6
    assert info.special_tokens["<start_of_turn>"] > 0
    assert info.summary()["has_chat_template"] is False


def test_reads_the_real_embedding_model(embed_model_path: Path) -> None:
    info = read_gguf(embed_model_path)
    assert info.architecture == "bert"
    assert info.quantization == "F16"
    assert info.is_embedding_model
    assert info.arch_value("embedding_length") == 384


def test_small_written_file_with_template(tmp_path: Path) -> None:
    path = write_small_gguf(tmp_path / "t.gguf", chat_template="{{ messages[0].content }}")
    info = read_gguf(path)
    assert info.chat_template == "{{ messages[0].content }}"
    assert info.name == "tiny test model"
    assert info.array_lengths["tokenizer.ggml.tokens"] == 5


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("I am a text file pretending to be a model, long enough to read." * 3)
    with pytest.raises(ModelFileError, match="notes.gguf is not a GGUF model"):
        read_gguf(path)


def test_tiny_and_missing_files(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF")
    with pytest.raises(ModelFileError, match="only 4 bytes"):
        read_gguf(tiny)
    with pytest.raises(ModelFileError, match="Cannot open"):
        read_gguf(tmp_path / "absent.gguf")


def test_truncated_download(tmp_path: Path, gemma_path: Path) -> None:
    for keep in (100, 5_000_000, gemma_path.stat().st_size - 1000):
        cut = tmp_path / f"cut-{keep}.gguf"
        with gemma_path.open("rb") as src:
            cut.write_bytes(src.read(keep))
        with pytest.raises(ModelFileError, match="truncated|ends early|runs past") as err:
            read_gguf(cut)
        assert cut.name in err.value.message


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(header(version=1) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="version 1"):
        read_gguf(path)


def test_absurd_counts_and_lengths(tmp_path: Path) -> None:
    many = tmp_path / "many.gguf"
    many.write_bytes(header(tensors=2**60, kvs=1) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="claims"):
        read_gguf(many)
    long_key = tmp_path / "longkey.gguf"
    long_key.write_bytes(header(kvs=1) + struct.pack("<Q", 2**62) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="claims"):
        read_gguf(long_key)
    huge_array = tmp_path / "array.gguf"
    key = b"x.array"
    huge_array.write_bytes(header(kvs=1) + struct.pack("<Q", len(key)) + key
                           + struct.pack("<IIQ", 9, 4, 2**40) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="claims"):
        read_gguf(huge_array)


def test_tensor_past_end_of_file(tmp_path: Path) -> None:
    name = b"w"
    tensor = struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 1024, 0, 0)
    path = tmp_path / "short.gguf"
    path.write_bytes(header(tensors=1, kvs=1) + kv_string("general.architecture", "llama")
                     + tensor + b"\0" * 100)
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(path)
