"""Fuzzing the GGUF header check with the real test model's header (issue 10).

A few hundred deterministic variants of the real Gemma header (truncations, counts, string
lengths, value and item types, values, tensor descriptions, byte flips, inserted and
deleted bytes) must each either pass `read_gguf` or raise ModelFileError with one line,
never another exception and never a hang. Only the header is real in these files: the
data part is a sparse stretch of zeros of the right length, so each variant costs a few
megabytes of writing, not 250 MB.

Then a handful of variants that pass the check are loaded by the real engine worker: each
loads or fails with one sentence, and the worker serves the real model afterwards.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from desktop.core.errors import EngineError, ModelFileError
from desktop.core.models.gguf import read_gguf

SEED = 20261123
VARIANTS = 250

_SCALAR_WIDTH = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


@dataclass
class Field:
    """One number in the header: where it is, how wide, and what it means."""

    kind: str  # count | key_len | vtype | value | str_len | item_type | item_count | ...
    pos: int
    width: int
    label: str
    value: int  # the raw little-endian bits


@dataclass
class Header:
    raw: bytes  # the header proper: up to the end of the tensor descriptions
    data_start: int  # where tensor data starts in the real file (aligned)
    size: int  # the real file's size
    fields: list[Field]

    def find(self, label: str, kind: str = "value") -> Field:
        return next(f for f in self.fields if f.label == label and f.kind == kind)


def parse_header(path: Path) -> Header:
    """An independent walk over a GGUF header that records every number's position."""
    with path.open("rb") as handle:
        blob = handle.read(16 * 1024 * 1024)
    fields: list[Field] = []
    pos = 0

    def take(fmt: str, kind: str, label: str) -> int:
        nonlocal pos
        width = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, blob, pos)
        bits = int.from_bytes(blob[pos:pos + width], "little")  # floats mutate as bits too
        fields.append(Field(kind, pos, width, label, bits))
        pos += width
        return int(value) if not isinstance(value, float) else bits

    def string(kind: str, label: str) -> str:
        nonlocal pos
        length = take("<Q", kind, label)
        text = blob[pos:pos + length].decode("utf-8", "replace")
        pos += length
        return text

    pos = 4
    take("<I", "version", "version")
    n_tensors = take("<Q", "count", "tensor_count")
    n_kv = take("<Q", "count", "kv_count")
    fmt_of = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}
    alignment = 32
    for _ in range(n_kv):
        key = string("key_len", "key")
        vtype = take("<I", "vtype", key)
        if vtype == 8:
            string("str_len", key)
        elif vtype == 9:
            item_type = take("<I", "item_type", key)
            count = take("<Q", "item_count", key)
            if item_type == 8:
                # Record the first few strings' lengths (a vocabulary has 262,144 of them).
                for index in range(count):
                    if index < 16:
                        string("str_len", f"{key}[{index}]")
                    else:
                        (length,) = struct.unpack_from("<Q", blob, pos)
                        pos += 8 + length
            else:
                width = _SCALAR_WIDTH[item_type]
                if count <= 16:
                    for index in range(count):
                        take(fmt_of[item_type], "value", f"{key}[{index}]")
                else:
                    pos += width * count
        else:
            value = take(fmt_of[vtype], "value", key)
            if key == "general.alignment":
                alignment = value
    for index in range(n_tensors):
        name = string("tensor_name_len", f"tensor {index}")
        n_dims = take("<I", "tensor_dims", name)
        for _ in range(n_dims):
            take("<Q", "tensor_dim", name)
        take("<I", "tensor_type", name)
        take("<Q", "tensor_offset", name)
    data_start = (pos + alignment - 1) // alignment * alignment
    return Header(blob[:pos], data_start, path.stat().st_size, fields)


def interesting(rng: random.Random, width: int, original: int) -> int:
    """Values that break parsers: edges of every width, off-by-ones, and noise."""
    top = (1 << (8 * width)) - 1
    pool = [0, 1, 2, 7, 8, 63, 64, 255, 256, 511, 512, 513, 1024, 4096, 65535, 65536,
            2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
            original - 1, original + 1, original * 2, original // 2, rng.getrandbits(8 * width)]
    return rng.choice(pool) & top


def _put(raw: bytearray, field: Field, value: int) -> None:
    raw[field.pos:field.pos + field.width] = value.to_bytes(field.width, "little")


@dataclass
class Variant:
    description: str
    header: bytes  # the (mutated) header proper
    length: int | None = None  # a truncated file's length; None: the real file's size


def mutate(header: Header, rng: random.Random) -> Variant:
    raw = bytearray(header.raw)
    kind = rng.choice(["truncate", "count", "length", "type", "value", "items", "tensor",
                       "flip", "splice"])
    by_kind: Callable[..., list[Field]] = lambda *kinds: [  # noqa: E731
        f for f in header.fields if f.kind in kinds]
    if kind == "truncate":
        cut = rng.choice([rng.randrange(0, len(raw)), rng.randrange(len(raw), header.size)])
        return Variant(f"truncated to {cut} bytes", bytes(raw[:cut]), cut)
    if kind in ("flip", "splice"):
        at = rng.randrange(24, len(raw))
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                spot = rng.randrange(24, len(raw))
                raw[spot] ^= 1 << rng.randrange(8)
            return Variant(f"bytes flipped near {at}", bytes(raw))
        span = rng.randint(1, 16)
        if rng.random() < 0.5:
            return Variant(f"{span} bytes deleted at {at}", bytes(raw[:at] + raw[at + span:]))
        noise = bytes(rng.getrandbits(8) for _ in range(span))
        return Variant(f"{span} bytes inserted at {at}", bytes(raw[:at] + noise + raw[at:]))
    choices = {
        "count": by_kind("count", "version"),
        "length": by_kind("key_len", "str_len", "tensor_name_len"),
        "type": by_kind("vtype", "item_type", "tensor_type"),
        "value": by_kind("value"),
        "items": by_kind("item_count"),
        "tensor": by_kind("tensor_dims", "tensor_dim", "tensor_offset"),
    }[kind]
    field = rng.choice(choices)
    if field.kind in ("vtype", "item_type", "tensor_type") and rng.random() < 0.7:
        value = rng.randrange(0, 42)  # mostly real type ids, some of them wrong for the data
    else:
        value = interesting(rng, field.width, field.value)
    _put(raw, field, value)
    return Variant(f"{field.kind} of {field.label!r}: {field.value} -> {value}", bytes(raw))


def write_variant(target: Path, header: Header, variant: Variant) -> Path:
    """The mutated header, then zeros up to the real file's length (sparse, so cheap)."""
    with target.open("wb") as handle:
        handle.write(variant.header)
        handle.truncate(variant.length if variant.length is not None else header.size)
    return target


def check_message(error: ModelFileError, variant: Variant) -> None:
    message = error.message
    assert message and "\n" not in message and len(message) < 400, (variant, message)
    assert message.endswith("."), (variant, message)


@pytest.fixture(scope="module")
def real_header(gemma_path: Path) -> Header:
    return parse_header(gemma_path)


def test_the_unmutated_header_passes(real_header: Header, tmp_path: Path) -> None:
    path = write_variant(tmp_path / "same.gguf", real_header,
                         Variant("unchanged", real_header.raw))
    info = read_gguf(path)
    assert info.block_count == 18 and info.architecture == "gemma3"


def test_hundreds_of_mutated_headers_pass_or_give_one_sentence(real_header: Header,
                                                               tmp_path: Path) -> None:
    rng = random.Random(SEED)
    target = tmp_path / "variant.gguf"
    outcomes: dict[str, int] = {"passed": 0, "refused": 0}
    reasons: set[str] = set()
    for _ in range(VARIANTS):
        variant = mutate(real_header, rng)
        write_variant(target, real_header, variant)
        try:
            read_gguf(target)
        except ModelFileError as exc:
            check_message(exc, variant)
            outcomes["refused"] += 1
            reasons.add(re.sub(r"\d+|'[^']*'", "_", exc.message))
        except Exception as exc:  # noqa: BLE001 - the point: name the variant that broke it
            raise AssertionError(f"{variant.description}: {type(exc).__name__}: {exc}") from exc
        else:
            outcomes["passed"] += 1
    # The campaign is only worth something if it reaches both outcomes, many ways.
    assert outcomes["refused"] > VARIANTS // 3 and outcomes["passed"] > 10, outcomes
    assert len(reasons) > 10, reasons


# Values llama.cpp asserts on (aborting the whole worker) or cannot size memory for: each
# is refused by the check, naming what is wrong.
REFUSED: list[tuple[str, str, int, str]] = [
    ("gemma3.block_count", "value", 2**31, "block_count is 2147483648"),
    ("gemma3.block_count", "value", 0, "block_count is 0"),
    ("gemma3.block_count", "value", 17, "tensors for layer 17"),
    ("gemma3.context_length", "value", 0, "context_length is 0"),
    ("gemma3.context_length", "value", 2**32 - 1, "context_length is 4294967295"),
    ("gemma3.embedding_length", "value", 2**31, "embedding_length is"),
    ("gemma3.attention.head_count", "value", 2**31, "head_count is"),
    ("gemma3.block_count", "vtype", 6, "block_count is not a whole number"),
    ("gemma3.context_length", "vtype", 6, "context_length is not a whole number"),
    ("tokenizer.ggml.tokens", "item_count", 2**40, "claims"),
    ("tokenizer.ggml.scores", "item_type", 4, "scores does not give one value per token"),
    ("tokenizer.ggml.token_type", "item_type", 6, "token_type does not give one value"),
]


@pytest.mark.parametrize(("label", "kind", "value", "expected"), REFUSED,
                         ids=[f"{r[0]}-{r[1]}-{r[2]}" for r in REFUSED])
def test_values_llama_cpp_would_abort_on_are_refused(real_header: Header, tmp_path: Path,
                                                      label: str, kind: str, value: int,
                                                      expected: str) -> None:
    raw = bytearray(real_header.raw)
    _put(raw, real_header.find(label, kind), value)
    path = write_variant(tmp_path / "bad.gguf", real_header, Variant(label, bytes(raw)))
    with pytest.raises(ModelFileError, match=re.escape(expected)) as error:
        read_gguf(path)
    check_message(error.value, Variant(label, bytes(raw)))


def test_a_duplicate_token_and_shifted_tensor_data_are_refused(real_header: Header,
                                                               tmp_path: Path) -> None:
    # Two equal tokens trip GGML_ASSERT in llama.cpp's vocabulary loader.
    raw = bytearray(real_header.raw)
    first, second = (real_header.find(f"tokenizer.ggml.tokens[{i}]", "str_len") for i in (0, 1))
    assert first.value == second.value == 5  # <pad> and <eos>
    raw[second.pos + 8:second.pos + 13] = raw[first.pos + 8:first.pos + 13]
    path = write_variant(tmp_path / "dup.gguf", real_header, Variant("dup", bytes(raw)))
    with pytest.raises(ModelFileError, match="same token twice"):
        read_gguf(path)
    # Tensor data must follow back to back, as llama.cpp's loader requires.
    raw = bytearray(real_header.raw)
    offsets = [f for f in real_header.fields if f.kind == "tensor_offset"]
    _put(raw, offsets[3], offsets[3].value + 32)
    path = write_variant(tmp_path / "shift.gguf", real_header, Variant("shift", bytes(raw)))
    with pytest.raises(ModelFileError, match="claims data at offset"):
        read_gguf(path)


def test_the_tensor_type_table_matches_the_installed_llama_cpp() -> None:
    """A type the reader does not know is refused: the table must follow llama.cpp's, or
    files of a new quantization would be refused wrongly (and a wrong size passes bad ones)."""
    import ctypes
    import os

    import llama_cpp

    from desktop.core.models.gguf import _TENSOR_BLOCKS

    lib_dir = Path(os.path.dirname(llama_cpp.__file__)) / "lib"
    found = sorted(lib_dir.glob("*ggml-base*"))
    assert found, f"no ggml-base library in {lib_dir}"
    ggml = ctypes.CDLL(str(found[0]))
    ggml.ggml_blck_size.restype = ctypes.c_int64
    ggml.ggml_type_size.restype = ctypes.c_size_t
    theirs = {}
    for ttype in range(llama_cpp.GGML_TYPE_COUNT):  # beyond it, ggml reads past its table
        block, size = ggml.ggml_blck_size(ttype), ggml.ggml_type_size(ttype)
        if size:
            theirs[ttype] = (block, size)
    assert theirs == _TENSOR_BLOCKS


# Mutations that keep the header's size and pass the check, each a value llama.cpp reads:
# the worker must load such a file or refuse it in one sentence, never take the app down.
ENGINE_VARIANTS: list[tuple[str, str, int]] = [
    ("gemma3.block_count", "value", 19),  # more layers than the file has tensors for
    ("gemma3.context_length", "value", 1),
    ("gemma3.embedding_length", "value", 641),
    ("gemma3.attention.head_count", "value", 3),
    ("gemma3.attention.key_length", "value", 1),
    ("tokenizer.ggml.bos_token_id", "value", 2**31),
    ("tokenizer.ggml.eos_token_id", "value", 2**32 - 1),
    ("general.file_type", "value", 9999),
]


def passing_variants(header: Header, target: Path, wanted: int) -> list[Variant]:
    """Random same-size mutations (values, types, flipped bits) that pass the check."""
    rng = random.Random(SEED + 1)
    found: list[Variant] = []
    while len(found) < wanted:
        variant = mutate(header, rng)
        if variant.length is not None or len(variant.header) != len(header.raw):
            continue
        try:
            read_gguf(write_variant(target, header, variant))
        except ModelFileError:
            continue
        found.append(variant)
    return found


def test_variants_that_pass_the_check_load_or_fail_in_one_sentence(
        real_header: Header, gemma_path: Path, tmp_path: Path) -> None:
    from desktop.core.engine.client import EngineClient, LoadOptions

    targeted = []
    for label, kind, value in ENGINE_VARIANTS:
        raw = bytearray(real_header.raw)
        _put(raw, real_header.find(label, kind), value)
        targeted.append(Variant(f"{label} = {value}", bytes(raw)))
    variants = targeted + passing_variants(real_header, tmp_path / "probe.gguf", 3)
    # One copy of the real file; each variant rewrites only its header in place, so the
    # tensor data behind it is the real model's.
    path = tmp_path / "variant.gguf"
    shutil.copyfile(gemma_path, path)
    client = EngineClient(tmp_path / "engine.log")
    outcomes: dict[str, str] = {}
    try:
        for variant in variants:
            with path.open("r+b") as handle:
                handle.write(variant.header)
            read_gguf(path)  # these pass the check: the engine is what is tested here
            try:
                client.load(LoadOptions(str(path), n_ctx=512))
                client.count_tokens(["Hello there"])
                outcomes[variant.description] = "loaded"
            except (EngineError, ModelFileError) as exc:
                assert exc.message and "\n" not in exc.message, (variant, exc.message)
                outcomes[variant.description] = exc.message
        # The worker (respawned if a variant killed it) still serves the real model.
        client.load(LoadOptions(str(gemma_path), n_ctx=512))
        reply = client.generate([{"text": "The capital of France is", "special": False}],
                                {"max_tokens": 3, "temperature": 0}).wait()
        assert reply["completion_tokens"] == 3
        assert client.alive
    finally:
        client.shutdown()
    assert "loaded" in outcomes.values() and len(set(outcomes.values())) > 1, outcomes
