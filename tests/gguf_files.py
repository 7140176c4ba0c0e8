"""Real GGUF files written by the tests: valid small ones (gguf's writer) and broken ones."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGUFWriter


def write_small_gguf(path: Path, *, chat_template: str | None = None,
                     architecture: str = "llama", tokens: list[str] | None = None) -> Path:
    writer = GGUFWriter(str(path), architecture)
    writer.add_name("tiny test model")
    writer.add_context_length(256)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_file_type(1)
    writer.add_token_list(tokens or ["<unk>", "<s>", "</s>", "hello", "world"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.zeros((5, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def kv_string(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _skip_value(buf: bytes, pos: int, kind: int) -> int:
    if kind == 8:  # string
        return pos + 8 + struct.unpack_from("<Q", buf, pos)[0]
    if kind == 9:  # array
        item, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if item in _SCALAR:
            return pos + _SCALAR[item] * count
        for _ in range(count):
            pos = _skip_value(buf, pos, item)
        return pos
    return pos + _SCALAR[kind]


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    """A copy of a real GGUF whose `tokenizer.chat_template` is `template`.

    Tensor offsets are relative to the data section, so only the header is rebuilt and the
    weights are copied as they are (gguf's own rewriter re-encodes them: ~25 s for 250 MB)."""
    with open(source, "rb") as src:
        buf = src.read(64 << 20)  # the header of any test model fits
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        pos, kvs, alignment = 24, [], 32
        for _ in range(n_kv):
            start = pos
            key_len = struct.unpack_from("<Q", buf, pos)[0]
            key = buf[pos + 8:pos + 8 + key_len].decode()
            kind = struct.unpack_from("<I", buf, pos + 8 + key_len)[0]
            pos = _skip_value(buf, pos + 12 + key_len, kind)
            if key == "general.alignment":
                alignment = struct.unpack_from("<I", buf, pos - 4)[0]
            if key != "tokenizer.chat_template":
                kvs.append(buf[start:pos])
        infos_start = pos
        for _ in range(n_tensors):
            name_len = struct.unpack_from("<Q", buf, pos)[0]
            n_dims = struct.unpack_from("<I", buf, pos + 8 + name_len)[0]
            pos += 8 + name_len + 4 + 8 * n_dims + 4 + 8
        data_offset = pos + (-pos % alignment)
        head = (b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kvs) + 1) + b"".join(kvs)
                + kv_string("tokenizer.chat_template", template) + buf[infos_start:pos])
        head += b"\0" * (-len(head) % alignment)
        with open(target, "wb") as out:
            out.write(head)
            src.seek(data_offset)
            while chunk := src.read(1 << 22):
                out.write(chunk)
    return target
