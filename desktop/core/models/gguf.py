"""A pure-Python GGUF header reader that validates a file before llama.cpp ever sees it.

llama.cpp trusts the header: absurd counts or offsets in a damaged or hostile file can
crash the process that loads it (`block_count = 2^31` trips a GGML_ASSERT and aborts the
worker). Here every count, length and offset is bounded against the file size, the
hyperparameters llama.cpp asserts on are checked against the same limits it asserts, and
any problem becomes a one-sentence ModelFileError naming the file. The limits below mirror
llama.cpp's own (gguf.cpp, llama-model.cpp, llama-vocab.cpp), so a file refused here is one
llama.cpp would refuse or crash on, and tests/core/test_gguf_fuzz.py holds us to it.
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
MAX_KEY = 65_536  # metadata key names are short dotted paths
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME (64) including the terminating NUL
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ELEMENTS = 2**62  # ggml computes sizes in int64
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS: more trips GGML_ASSERT in llama-model.cpp
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS, likewise
MAX_CONTEXT = 1 << 24  # 16M tokens; the longest trained contexts today are 10M
MAX_EMBEDDING = 1 << 20
MAX_VOCAB = 1 << 22  # 4M tokens; real vocabularies are at most a few hundred thousand
ROPE_SCALING_TYPES = frozenset({"none", "linear", "yarn", "longrope"})
# Encoder-only architectures: they embed text and cannot generate.
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2",
                                     "jina-bert-v3", "t5encoder", "modern-bert", "neo-bert"})
MAX_STRING = 64 * 1024 * 1024
MAX_ARRAY = 50_000_000
# A string array is walked item by item: bounding it keeps a damaged count from turning
# into minutes of Python loop over a zero-filled region.
MAX_STRING_ARRAY = MAX_VOCAB
KEEP_ARRAY = 64  # arrays longer than this are summarized, not kept (token lists are huge)
KEEP_NUMBERS = MAX_LAYERS  # numeric arrays are cheap: keep per-layer lists whole

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
    39: (32, 17), 40: (64, 36), 41: (128, 18), 42: (64, 18),
}  # tests/core/test_gguf_fuzz.py compares this with the installed llama.cpp's own table


@dataclass
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    tensor_count: int
    parameter_count: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int] = field(default_factory=dict)
    value_types: dict[str, int] = field(default_factory=dict)  # key -> GGUF value type id
    array_types: dict[str, int] = field(default_factory=dict)  # array key -> item type id
    special_tokens: dict[str, int] = field(default_factory=dict)
    # Where the vocabulary's strings lie in the file (start, end byte): a draft model's
    # vocabulary is compared by hashing these bytes (draft_pairing.vocab_fingerprint).
    token_span: tuple[int, int] | None = None

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
        return _as_int(self.arch_value("context_length"))

    @property
    def chat_template(self) -> str | None:
        template = self.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def quantization(self) -> str:
        file_type = _as_int(self.get("general.file_type"))
        if file_type is None:
            return "unknown"
        return FILE_TYPES.get(file_type, f"type {file_type}")

    @property
    def block_count(self) -> int | None:
        return _as_int(self.arch_value("block_count"))

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

    @property
    def head_size(self) -> int:
        """Width of one attention head's keys (0 when the header does not say)."""
        heads = _as_int(self.arch_value("attention.head_count")) or 0
        embed = _as_int(self.arch_value("embedding_length")) or 0
        return _as_int(self.arch_value("attention.key_length")) or (
            embed // heads if heads else 0)

    def kv_bytes_per_token(self) -> int:
        """f16 K and V for one token across all layers (what the KV cache costs per token)."""
        # Per-layer lists (head counts that vary by layer) count at their largest.
        heads = _as_int(self.arch_value("attention.head_count")) or 0
        kv_heads = _as_int(self.arch_value("attention.head_count_kv")) or heads
        key_len = self.head_size
        value_len = _as_int(self.arch_value("attention.value_length")) or key_len
        return int((self.block_count or 0) * kv_heads * (key_len + value_len) * 2)


def _as_int(value: Any) -> int | None:
    """A header number as an int; a per-layer list counts as its largest entry."""
    if isinstance(value, list):
        value = max((v for v in value if isinstance(v, int)), default=None)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


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

    def raw_string(self, limit: int = MAX_STRING, what: str = "a string") -> bytes:
        length = self.scalar("<Q")
        if length > limit:
            raise self.fail(f"{what} claims {length} bytes")
        self.need(length)
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        return raw

    def string(self, limit: int = MAX_STRING, what: str = "a string") -> str:
        return self.raw_string(limit, what).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.scalar("<Q")
        if length > MAX_STRING:
            raise self.fail(f"a string claims {length} bytes")
        self.need(length)
        self.pos += length


def _show(text: str | bytes) -> str:
    """A name from the file, quoted and cut short: messages stay one readable line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return repr(text if len(text) <= 48 else text[:48] + "...")


def _read_value(cur: _Cursor, vtype: int, key: str, info: GGUFInfo) -> Any:
    if vtype in _SCALARS:
        return cur.scalar(_SCALARS[vtype])
    if vtype == _STRING:
        return cur.string()
    if vtype != _ARRAY:
        raise cur.fail(f"metadata {_show(key)} has unknown type {vtype}")
    item_type = cur.scalar("<I")
    count = cur.scalar("<Q")
    if count > MAX_ARRAY:
        raise cur.fail(f"metadata {_show(key)} claims {count} items")
    info.array_lengths[key] = count
    info.array_types[key] = item_type
    if item_type in _SCALARS:
        width = struct.calcsize(_SCALARS[item_type])
        cur.need(width * count)
        if count <= KEEP_NUMBERS:
            values = list(struct.unpack_from(f"<{count}{_SCALARS[item_type][1]}", cur.buf, cur.pos))
            cur.pos += width * count
            return values
        cur.pos += width * count
        return None
    if item_type == _STRING:
        # Every string costs at least its 8-byte length: a count the file cannot hold is
        # refused before walking it.
        if count > MAX_STRING_ARRAY:
            raise cur.fail(f"metadata {_show(key)} claims {count} strings")
        cur.need(8 * count)
        if key == "tokenizer.ggml.tokens":
            return _read_tokens(cur, count, info)
        if count <= KEEP_ARRAY:
            return [cur.string() for _ in range(count)]
        for _ in range(count):
            cur.skip_string()
        return None
    if item_type == _ARRAY:
        raise cur.fail(f"metadata {_show(key)} nests arrays")
    raise cur.fail(f"metadata {_show(key)} has items of unknown type {item_type}")


def _read_tokens(cur: _Cursor, count: int, info: GGUFInfo) -> None:
    """Walk the vocabulary, keeping only control-looking tokens (<...>) for template choice.

    Two equal tokens make llama.cpp abort (GGML_ASSERT on its token map), so they are
    refused here; empty ones it renames itself, so those pass."""
    buf, size = cur.buf, cur.size
    pos = start = cur.pos
    unpack = struct.unpack_from
    seen: set[bytes] = set()
    add = seen.add
    for token_id in range(count):
        if pos + 8 > size:
            cur.pos = pos
            raise cur.fail("the file ends early (truncated or incomplete download)")
        (length,) = unpack("<Q", buf, pos)
        pos += 8
        if length > MAX_STRING or pos + length > size:
            cur.pos = pos
            raise cur.fail("a token string runs past the end of the file")
        token = buf[pos:pos + length]
        if 2 < length < 40 and token[0] == 0x3C and token[-1] == 0x3E:  # "<" ... ">"
            info.special_tokens[token.decode("utf-8", "replace")] = token_id
        add(token)
        pos += length
    cur.pos = pos
    info.token_span = (start, pos)
    if len(seen) != count:
        raise cur.fail("its vocabulary lists the same token twice")


def read_gguf(path: str | Path, *, projector: bool = False) -> GGUFInfo:
    """Validate a GGUF file's header and return its metadata; raise ModelFileError if unusable.
    `projector`: the file is a vision model's mmproj (clip keys instead of a text model's)."""
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
            return _parse(buf, path, size, projector)
    except OSError as exc:
        raise ModelFileError(f"Cannot read model file {path}: {exc.strerror or exc}.") from exc


def _parse(buf: mmap.mmap, path: Path, size: int, projector: bool = False) -> GGUFInfo:
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
        key = cur.string(MAX_KEY, "a metadata key")
        if key in info.metadata:
            raise cur.fail(f"metadata {_show(key)} appears twice")
        vtype = cur.scalar("<I")
        info.value_types[key] = vtype
        info.metadata[key] = _read_value(cur, vtype, key, info)

    alignment = info.metadata.get("general.alignment", 32)
    # llama.cpp reads the alignment as a uint32 and aborts on any other type.
    if "general.alignment" in info.metadata and info.value_types["general.alignment"] != 4 \
            or not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"alignment {alignment!r} is not a power of two")
    # Each tensor's description takes at least 24 bytes: refuse a count the file cannot hold.
    if tensor_count * 24 > size - cur.pos:
        raise cur.fail(f"the header claims {tensor_count} tensors, more than the file can hold")
    tensors: list[tuple[bytes, int, int]] = []  # (name, offset, byte size)
    names: set[bytes] = set()
    last_layer = -1
    for _ in range(tensor_count):
        name = cur.raw_string(MAX_TENSOR_NAME, "a tensor name")
        if name in names:
            raise cur.fail(f"two tensors are named {_show(name)}")
        names.add(name)
        n_dims = cur.scalar("<I")
        if n_dims > MAX_DIMS:
            raise cur.fail(f"tensor {_show(name)} claims {n_dims} dimensions")
        dims = [cur.scalar("<Q") for _ in range(n_dims)]
        elements = 1
        for dim in dims:
            elements *= dim
            if elements > MAX_ELEMENTS or dim > MAX_ELEMENTS:
                raise cur.fail(f"tensor {_show(name)} claims {dims} elements")
        ttype = cur.scalar("<I")
        block = _TENSOR_BLOCKS.get(ttype)
        if block is None:
            raise cur.fail(f"tensor {_show(name)} has unknown type {ttype}")
        if (dims[0] if dims else 1) % block[0]:
            raise cur.fail(f"tensor {_show(name)} has rows that do not fill its type's blocks")
        offset = cur.scalar("<Q")
        info.parameter_count += elements
        tensors.append((name, offset, elements // block[0] * block[1]))
        if name.startswith(b"blk."):
            number = name[4:].split(b".", 1)[0]
            if number.isdigit() and len(number) < 6:
                last_layer = max(last_layer, int(number))

    # llama.cpp expects tensor data back to back in header order, each padded to the
    # alignment: any other offset is a damaged header.
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    expected = 0
    for name, offset, nbytes in tensors:
        if offset != expected:
            raise cur.fail(f"tensor {_show(name)} claims data at offset {offset}, "
                           f"not at {expected} where it belongs")
        end = data_start + offset + nbytes
        if end > size:
            raise ModelFileError(
                f"{path.name} is truncated: tensor data reaches byte {end} but the file has "
                f"{size} bytes (an incomplete download?).", details=str(path))
        expected += (nbytes + alignment - 1) // alignment * alignment
    if projector:
        _check_projector(cur, info)
    else:
        _check_hyperparameters(cur, info, last_layer)
    return info


# A vision projector's numbers that libmtmd sizes its image graph with: (lowest, highest).
_PROJECTOR_NUMBERS: dict[str, tuple[int, int]] = {
    "clip.vision.image_size": (1, 1 << 14),
    "clip.vision.patch_size": (1, 1 << 10),
    "clip.vision.block_count": (1, MAX_LAYERS),
    "clip.vision.embedding_length": (1, MAX_EMBEDDING),
    "clip.vision.attention.head_count": (1, 1 << 16),
}


def _check_projector(cur: _Cursor, info: GGUFInfo) -> None:
    if info.metadata.get("clip.has_vision_encoder") is not True:
        raise cur.fail("it is not a vision projector (clip.has_vision_encoder is not set)")
    if not isinstance(info.metadata.get("clip.projector_type")
                      or info.metadata.get("clip.vision.projector_type"), str):
        raise cur.fail("clip.projector_type is missing")
    for key, (low, high) in _PROJECTOR_NUMBERS.items():
        value = info.metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise cur.fail(f"{key} is missing or out of range")


# Numbers under the architecture's prefix that llama.cpp sizes arrays and loops with:
# (lowest, highest) it can work with. Per-layer keys may also be lists, one per layer.
_ARCH_NUMBERS: dict[str, tuple[int, int]] = {
    "block_count": (1, MAX_LAYERS),
    "context_length": (1, MAX_CONTEXT),
    "embedding_length": (1, MAX_EMBEDDING),
    "feed_forward_length": (0, 1 << 24),
    "attention.head_count": (0, 1 << 16),
    "attention.head_count_kv": (0, 1 << 16),
    "attention.key_length": (1, 1 << 16),
    "attention.value_length": (1, 1 << 16),
    "rope.dimension_count": (0, 1 << 16),
    "vocab_size": (1, MAX_VOCAB),
    "expert_count": (0, MAX_EXPERTS),
    "expert_used_count": (0, MAX_EXPERTS),
    "expert_group_count": (0, MAX_EXPERTS),
    "expert_group_used_count": (0, MAX_EXPERTS),
    "nextn_predict_layers": (0, MAX_LAYERS),
}
_PER_LAYER = frozenset({"feed_forward_length", "attention.head_count",
                        "attention.head_count_kv", "expert_used_count"})
_REQUIRED = ("block_count", "context_length", "embedding_length")  # llama.cpp needs them all
_INT_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})


def _check_hyperparameters(cur: _Cursor, info: GGUFInfo, last_layer: int) -> None:
    """Refuse the values llama.cpp would assert on (abort) or size memory by."""
    arch = info.metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch or len(arch) > 64:
        raise cur.fail("general.architecture is missing or not a name")
    file_type = info.metadata.get("general.file_type")
    if file_type is not None and info.value_types["general.file_type"] not in _INT_TYPES:
        raise cur.fail("general.file_type is not a number")
    numbers: dict[str, int] = {}
    for name, (low, high) in _ARCH_NUMBERS.items():
        key = f"{arch}.{name}"
        if key not in info.metadata:
            if name in _REQUIRED:
                raise cur.fail(f"{key} is missing")
            continue
        value = info.metadata[key]
        vtype = info.value_types[key]
        if vtype == _ARRAY and name in _PER_LAYER:
            items = value if isinstance(value, list) else []
            if info.array_types[key] not in _INT_TYPES or \
                    info.array_lengths[key] != len(items) or not items:
                raise cur.fail(f"{key} is not a list of per-layer numbers")
        elif vtype in _INT_TYPES:
            items = [value]
        else:
            raise cur.fail(f"{key} is not a whole number")
        for item in items:
            if not low <= item <= high:
                raise cur.fail(f"{key} is {item}, outside {low} to {high}")
        numbers[name] = max(items)
    layers = numbers["block_count"]
    for name in _PER_LAYER:
        if info.array_lengths.get(f"{arch}.{name}", layers) != layers:
            raise cur.fail(f"{arch}.{name} does not list one value per layer ({layers})")
    if last_layer >= layers:
        raise cur.fail(f"it has tensors for layer {last_layer} but "
                       f"{arch}.block_count says {layers} layers")
    if numbers.get("nextn_predict_layers", 0) > layers:
        raise cur.fail(f"{arch}.nextn_predict_layers exceeds the layer count")
    experts = numbers.get("expert_count", 0)
    used = numbers.get("expert_used_count", 0)
    groups = numbers.get("expert_group_count", 0)
    groups_used = numbers.get("expert_group_used_count", 0)
    if used > experts or (experts > 0 and used == 0) or (experts == 0 and groups) or (
            experts and (groups >= experts or (groups > 1 and (
                experts % groups or not 0 < groups_used < groups)))):
        raise cur.fail(f"its expert counts do not fit together ({experts} experts, "
                       f"{used} used, {groups} groups)")
    scaling = info.metadata.get(f"{arch}.rope.scaling.type")
    if scaling is not None and (not isinstance(scaling, str) or scaling not in ROPE_SCALING_TYPES):
        raise cur.fail(f"{arch}.rope.scaling.type {_show(str(scaling))} is unknown")
    _check_vocabulary(cur, info)


def _check_vocabulary(cur: _Cursor, info: GGUFInfo) -> None:
    if "tokenizer.ggml.tokens" not in info.metadata:
        return
    if info.value_types["tokenizer.ggml.tokens"] != _ARRAY or \
            info.array_types["tokenizer.ggml.tokens"] != _STRING:
        raise cur.fail("tokenizer.ggml.tokens is not a list of strings")
    n_tokens = info.array_lengths["tokenizer.ggml.tokens"]
    if not 1 <= n_tokens <= MAX_VOCAB:
        raise cur.fail(f"its vocabulary has {n_tokens} tokens")
    # llama.cpp reads one score and one type per token from these arrays.
    for key, types in (("tokenizer.ggml.scores", (5, 6)), ("tokenizer.ggml.token_type", (5,))):
        if key in info.metadata and (
                info.value_types[key] != _ARRAY or info.array_types[key] not in types
                or info.array_lengths[key] < n_tokens):
            raise cur.fail(f"{key} does not give one value per token")
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template"):
        if key in info.metadata and info.value_types[key] != _STRING:
            raise cur.fail(f"{key} is not a string")
