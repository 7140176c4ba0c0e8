"""A pure-Python GGUF header reader that validates a file before llama.cpp ever sees it.

llama.cpp trusts the header: absurd counts or offsets in a damaged or hostile file can
crash the process that loads it. Here every count, length and offset is bounded against
the file size, and any problem becomes a ModelFileError naming the file.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.errors import ModelFileError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_TENSORS = 1_000_000
MAX_KV = 100_000
# Encoder-only architectures: they embed text and cannot generate.
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2",
                                     "jina-bert-v3", "t5encoder", "modern-bert", "neo-bert"})
MAX_STRING = 64 * 1024 * 1024
MAX_ARRAY = 50_000_000
KEEP_ARRAY = 64  # arrays longer than this are summarized, not kept (token lists are huge)

# value type id -> struct format (scalars), 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# llama_ftype -> the quantization label people see in file names.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}

# ggml tensor type -> (elements per block, bytes per block), to check tensor data lies in the file.
_TENSOR_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17),
}


@dataclass
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    tensor_count: int
    parameter_count: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int] = field(default_factory=dict)
    special_tokens: dict[str, int] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.get("general.name") or self.path.stem)

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.get(f"{self.architecture}.{key}", default)

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if value is not None else None

    @property
    def chat_template(self) -> str | None:
        template = self.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def quantization(self) -> str:
        file_type = self.get("general.file_type")
        if file_type is None:
            return "unknown"
        return FILE_TYPES.get(int(file_type), f"type {file_type}")

    @property
    def block_count(self) -> int | None:
        value = self.arch_value("block_count")
        return int(value) if value is not None else None

    @property
    def is_embedding_model(self) -> bool:
        return self.arch_value("pooling_type") is not None or self.architecture in \
            EMBEDDING_ARCHITECTURES

    def parameter_label(self) -> str:
        count = self.parameter_count
        if count >= 1e9:
            return f"{count / 1e9:.1f}B"
        return f"{count / 1e6:.0f}M"

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "parameters": self.parameter_count,
            "parameter_label": self.parameter_label(),
            "quantization": self.quantization,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "has_chat_template": self.chat_template is not None,
            "embedding_only": self.is_embedding_model,
            "file_size": self.file_size,
            "gguf_version": self.version,
            "kv_bytes_per_token": self.kv_bytes_per_token(),
        }

    def kv_bytes_per_token(self) -> int:
        """f16 K and V for one token across all layers (what the KV cache costs per token)."""
        heads = self.arch_value("attention.head_count") or 0
        kv_heads = self.arch_value("attention.head_count_kv") or heads
        kv_heads = max(kv_heads) if isinstance(kv_heads, list) else kv_heads  # per-layer lists
        embed = self.arch_value("embedding_length") or 0
        key_len = self.arch_value("attention.key_length") or (embed // heads if heads else 0)
        value_len = self.arch_value("attention.value_length") or key_len
        return int((self.block_count or 0) * kv_heads * (key_len + value_len) * 2)


class _Cursor:
    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path
        self.size = len(buf)

    def fail(self, why: str) -> ModelFileError:
        return ModelFileError(f"{self.path.name} is not a usable GGUF model: {why}.",
                              details=f"{self.path} at byte {self.pos}")

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail("the file ends early (truncated or incomplete download)")

    def scalar(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        if length > MAX_STRING:
            raise self.fail(f"a string claims {length} bytes")
        self.need(length)
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.scalar("<Q")
        if length > MAX_STRING:
            raise self.fail(f"a string claims {length} bytes")
        self.need(length)
        self.pos += length


def _read_value(cur: _Cursor, vtype: int, key: str, info: GGUFInfo) -> Any:
    if vtype in _SCALARS:
        return cur.scalar(_SCALARS[vtype])
    if vtype == _STRING:
        return cur.string()
    if vtype != _ARRAY:
        raise cur.fail(f"metadata {key!r} has unknown type {vtype}")
    item_type = cur.scalar("<I")
    count = cur.scalar("<Q")
    if count > MAX_ARRAY:
        raise cur.fail(f"metadata {key!r} claims {count} items")
    info.array_lengths[key] = count
    if item_type in _SCALARS:
        width = struct.calcsize(_SCALARS[item_type])
        cur.need(width * count)
        if count <= KEEP_ARRAY:
            values = list(struct.unpack_from(f"<{count}{_SCALARS[item_type][1]}", cur.buf, cur.pos))
            cur.pos += width * count
            return values
        cur.pos += width * count
        return None
    if item_type == _STRING:
        if key == "tokenizer.ggml.tokens":
            return _read_tokens(cur, count, info)
        if count <= KEEP_ARRAY:
            return [cur.string() for _ in range(count)]
        for _ in range(count):
            cur.skip_string()
        return None
    if item_type == _ARRAY:
        raise cur.fail(f"metadata {key!r} nests arrays")
    raise cur.fail(f"metadata {key!r} has items of unknown type {item_type}")


def _read_tokens(cur: _Cursor, count: int, info: GGUFInfo) -> None:
    """Walk the vocabulary, keeping only control-looking tokens (<...>) for template choice."""
    buf, size = cur.buf, cur.size
    pos = cur.pos
    unpack = struct.unpack_from
    for token_id in range(count):
        if pos + 8 > size:
            cur.pos = pos
            raise cur.fail("the file ends early (truncated or incomplete download)")
        (length,) = unpack("<Q", buf, pos)
        pos += 8
        if length > MAX_STRING or pos + length > size:
            cur.pos = pos
            raise cur.fail("a token string runs past the end of the file")
        if 2 < length < 40 and buf[pos] == 0x3C and buf[pos + length - 1] == 0x3E:  # "<" ... ">"
            info.special_tokens[buf[pos:pos + length].decode("utf-8", "replace")] = token_id
        pos += length
    cur.pos = pos


def read_gguf(path: str | Path) -> GGUFInfo:
    """Validate a GGUF file's header and return its metadata; raise ModelFileError if unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelFileError(f"Cannot open model file {path}: {exc.strerror or exc}.") from exc
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file.")
    if size < 24:
        raise ModelFileError(f"{path.name} is not a GGUF model: it is only {size} bytes long.")
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, path, size)
    except OSError as exc:
        raise ModelFileError(f"Cannot read model file {path}: {exc.strerror or exc}.") from exc


def _parse(buf: mmap.mmap, path: Path, size: int) -> GGUFInfo:
    cur = _Cursor(buf, path)
    if buf[:4] != MAGIC:
        raise ModelFileError(
            f"{path.name} is not a GGUF model (it does not start with 'GGUF'). "
            "Hearth runs llama.cpp GGUF files; convert other formats first."
        )
    cur.pos = 4
    version = cur.scalar("<I")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{path.name} uses GGUF version {version}; Hearth reads versions 2 and 3."
        )
    tensor_count = cur.scalar("<Q")
    kv_count = cur.scalar("<Q")
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        raise cur.fail(f"the header claims {tensor_count} tensors and {kv_count} metadata keys")
    info = GGUFInfo(path=path, version=version, file_size=size, tensor_count=tensor_count,
                    parameter_count=0, metadata={})
    for _ in range(kv_count):
        key = cur.string()
        vtype = cur.scalar("<I")
        info.metadata[key] = _read_value(cur, vtype, key, info)

    tensors: list[tuple[int, int]] = []  # (offset, byte size or -1 if unknown)
    for _ in range(tensor_count):
        cur.skip_string()
        n_dims = cur.scalar("<I")
        if n_dims > 8:
            raise cur.fail(f"a tensor claims {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= cur.scalar("<Q")
        ttype = cur.scalar("<I")
        offset = cur.scalar("<Q")
        info.parameter_count += elements
        block = _TENSOR_BLOCKS.get(ttype)
        tensors.append((offset, elements // block[0] * block[1] if block else -1))

    alignment = info.metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"alignment {alignment!r} is not a power of two")
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    for offset, nbytes in tensors:
        end = data_start + offset + max(nbytes, 0)
        if end > size:
            raise ModelFileError(
                f"{path.name} is truncated: tensor data reaches byte {end} but the file has "
                f"{size} bytes (an incomplete download?).", details=str(path))
    return info
