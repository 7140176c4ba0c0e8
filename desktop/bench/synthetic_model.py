"""A Llama-architecture GGUF with random weights and a real tokenizer, for speed tests.

Timing llama.cpp needs a model of a realistic shape, not a good one: the arithmetic per token
depends on the shape alone. Real 1B models are gigabytes and cannot travel to a machine that
has no network (the GPU machine `bench --peer-server --gpu-layers` was verified on), but a
tokenizer (1-2 MB) can. This writes an F16 model there, with normal(0, 0.02) weights, unit
norms and tied embeddings, in the shape asked for, around a tokenizer taken from any GGUF;
`llama-quantize` then makes the Q4_K_M people run.

    # here: keep only the tokenizer (vocabulary, merges, special ids, chat template)
    python -m desktop.bench.synthetic_model tokenizer SmolLM2-135M-Instruct.Q4_1.gguf tok.gguf
    # there: a ~1B Llama (2048 wide, 16 layers, 32 query heads, 8 KV heads, FFN 8192)
    python -m desktop.bench.synthetic_model model tok.gguf model-f16.gguf
    llama-quantize model-f16.gguf model-q4_k_m.gguf Q4_K_M

`write_hybrid_model` writes an LFM2 the same way (short-convolution layers with a recurrent
state, every third layer attention): the tests' hybrid model, since no real one can be
fetched here.

The generated text is noise; it exists to be timed. `gguf` (gguf-py) is a test and
development dependency only, imported here lazily (the frozen app excludes it).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCH = "llama"
# What a model needs from its source for tokenizing and chat templating; nothing else of the
# source (its architecture, shape or weights) is kept.
TOKENIZER_PREFIX = "tokenizer."


@dataclass(frozen=True)
class Shape:
    n_embd: int = 2048
    n_layer: int = 16
    n_head: int = 32
    n_head_kv: int = 8
    n_ff: int = 8192
    n_ctx_train: int = 8192
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def read_tokenizer(path: Path) -> list[tuple[str, Any, Any, Any]]:
    """The tokenizer.* key-values of a GGUF as (key, value, type, array item type)."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path)
    fields = []
    for name, field in reader.fields.items():
        if not name.startswith(TOKENIZER_PREFIX):
            continue
        main = field.types[0]
        sub = field.types[-1] if main == GGUFValueType.ARRAY else None
        value = field.contents()
        if sub is not None and sub != GGUFValueType.STRING:
            value = list(value)  # numpy scalars to plain values for the writer
        fields.append((name, value, main, sub))
    if not any(name == "tokenizer.ggml.tokens" for name, *_ in fields):
        raise ValueError(f"{path} has no tokenizer (no tokenizer.ggml.tokens).")
    return fields


def _add_tokenizer(writer: Any, fields: list[tuple[str, Any, Any, Any]]) -> int:
    n_vocab = 0
    for name, value, main, sub in fields:
        writer.add_key_value(name, value, main, sub_type=sub)
        if name == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    return n_vocab


def write_tokenizer(source: Path, target: Path) -> None:
    """A tensor-less GGUF holding only the tokenizer of `source`."""
    from gguf import GGUFWriter

    fields = read_tokenizer(source)
    writer = GGUFWriter(target, ARCH)
    _add_tokenizer(writer, fields)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()


def _writer(tokenizer: Path, target: Path, arch: str, shape: Shape,
            name: str) -> tuple[Any, list[tuple[str, Any, Any, Any]]]:
    """A GGUF writer for `arch` with the keys every shape has, and the tokenizer's fields."""
    from gguf import GGUFWriter, LlamaFileType

    if shape.n_embd % shape.n_head or shape.n_head % shape.n_head_kv:
        raise ValueError("n_embd must divide by n_head, and n_head by n_head_kv.")
    fields = read_tokenizer(tokenizer)
    writer = GGUFWriter(target, arch)
    writer.add_name(name)
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    return writer, fields


def write_model(tokenizer: Path, target: Path, shape: Shape, *, seed: int = 0,
                name: str = "synthetic-llama") -> int:
    """Write an F16 Llama GGUF with random weights; returns its parameter count.

    Tensors are generated and written one at a time, so memory stays at one tensor (a 1B
    model would otherwise hold 2 GB twice over)."""
    writer, fields = _writer(tokenizer, target, ARCH, shape, name)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    n_vocab = _add_tokenizer(writer, fields)
    writer.add_vocab_size(n_vocab)

    q_dim, kv_dim = shape.n_head * shape.head_dim, shape.n_head_kv * shape.head_dim
    # numpy shapes are (rows, columns) = (out, in); GGUF stores them reversed, as ggml wants.
    # No output.weight: llama.cpp then uses token_embd for the output (tied, as in Llama 3.2
    # 1B and SmolLM2).
    plan: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab, shape.n_embd))]
    for i in range(shape.n_layer):
        plan += [
            (f"blk.{i}.attn_norm.weight", (shape.n_embd,)),
            (f"blk.{i}.attn_q.weight", (q_dim, shape.n_embd)),
            (f"blk.{i}.attn_k.weight", (kv_dim, shape.n_embd)),
            (f"blk.{i}.attn_v.weight", (kv_dim, shape.n_embd)),
            (f"blk.{i}.attn_output.weight", (shape.n_embd, q_dim)),
            (f"blk.{i}.ffn_norm.weight", (shape.n_embd,)),
            (f"blk.{i}.ffn_gate.weight", (shape.n_ff, shape.n_embd)),
            (f"blk.{i}.ffn_up.weight", (shape.n_ff, shape.n_embd)),
            (f"blk.{i}.ffn_down.weight", (shape.n_embd, shape.n_ff)),
        ]
    plan.append(("output_norm.weight", (shape.n_embd,)))
    return _write_tensors(writer, plan, seed)


def _write_tensors(writer: Any, plan: list[tuple[str, tuple[int, ...]]], seed: int,
                   std: float = 0.02, embed_std: float | None = None) -> int:
    """Write the header and then `plan`'s tensors, one at a time; the parameter count."""
    import numpy as np

    def dtype(tensor: str, dims: tuple[int, ...]) -> Any:
        # Norms stay F32, as converters keep them; so do short-convolution kernels, which
        # llama.cpp's ssm_conv reads as F32 only.
        return np.float32 if len(dims) == 1 or tensor.endswith(F32_2D) else np.float16

    for tensor, dims in plan:
        nbytes = int(np.prod(dims)) * np.dtype(dtype(tensor, dims)).itemsize
        writer.add_tensor_info(tensor, dims, np.dtype(dtype(tensor, dims)), nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    params = 0
    for tensor, dims in plan:
        if len(dims) == 1:
            data = np.ones(dims, dtype=np.float32)  # unit RMS-norm gains keep activations sane
        else:
            scale = embed_std if embed_std is not None and tensor == "token_embd.weight" \
                else std
            data = (rng.standard_normal(dims, dtype=np.float32) * scale).astype(
                dtype(tensor, dims))
        writer.write_tensor_data(data)
        params += data.size
    writer.close()
    return params


HYBRID_ARCH = "lfm2"
F32_2D = ("shortconv.conv.weight",)  # 2-D tensors written as F32


def write_hybrid_model(tokenizer: Path, target: Path, shape: Shape, *, attention_every: int = 3,
                       l_cache: int = 3, seed: int = 0, std: float = 0.02,
                       embed_std: float | None = None, name: str = "synthetic-lfm2") -> int:
    """Write an F16 LFM2 GGUF with random weights: a hybrid model whose layers are short
    convolutions (a recurrent state in llama.cpp) except every `attention_every`-th, which is
    attention with a KV cache, as in Liquid's LFM2. Its parameter count. A larger `std` than
    the default makes replies that wander instead of repeating one token (for drafting tests,
    which need drafts that miss). A large `embed_std` (the tied embedding and output) makes its
    top tokens confident, as a draft model's must be to draft at all."""
    writer, fields = _writer(tokenizer, target, HYBRID_ARCH, shape, name)
    attention = [i % attention_every == attention_every - 1 for i in range(shape.n_layer)]
    # A KV head count per layer: 0 marks a convolution layer (llama.cpp's is_recr).
    writer.add_head_count_kv([shape.n_head_kv if a else 0 for a in attention])
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_uint32(f"{HYBRID_ARCH}.shortconv.l_cache", l_cache)
    n_vocab = _add_tokenizer(writer, fields)
    writer.add_vocab_size(n_vocab)

    head, kv_dim = shape.head_dim, shape.n_head_kv * shape.head_dim
    n = shape.n_embd
    plan: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab, n))]
    for i in range(shape.n_layer):
        plan += [(f"blk.{i}.attn_norm.weight", (n,)), (f"blk.{i}.ffn_norm.weight", (n,)),
                 (f"blk.{i}.ffn_gate.weight", (shape.n_ff, n)),
                 (f"blk.{i}.ffn_up.weight", (shape.n_ff, n)),
                 (f"blk.{i}.ffn_down.weight", (n, shape.n_ff))]
        if attention[i]:
            plan += [(f"blk.{i}.attn_q_norm.weight", (head,)),
                     (f"blk.{i}.attn_k_norm.weight", (head,)),
                     (f"blk.{i}.attn_q.weight", (n, n)),
                     (f"blk.{i}.attn_k.weight", (kv_dim, n)),
                     (f"blk.{i}.attn_v.weight", (kv_dim, n)),
                     (f"blk.{i}.attn_output.weight", (n, n))]
        else:
            plan += [(f"blk.{i}.shortconv.conv.weight", (n, l_cache)),
                     (f"blk.{i}.shortconv.in_proj.weight", (3 * n, n)),
                     (f"blk.{i}.shortconv.out_proj.weight", (n, n))]
    plan.append(("token_embd_norm.weight", (n,)))  # LFM2's output norm, under that name
    return _write_tensors(writer, plan, seed, std, embed_std)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.bench.synthetic_model",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("tokenizer", help="copy a GGUF's tokenizer into a tensor-less GGUF")
    tok.add_argument("source", type=Path)
    tok.add_argument("target", type=Path)
    model = sub.add_parser("model", help="write an F16 Llama GGUF with random weights")
    model.add_argument("tokenizer", type=Path, help="any GGUF with a tokenizer")
    model.add_argument("target", type=Path)
    defaults = Shape()
    for field in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_ctx_train"):
        model.add_argument("--" + field.replace("_", "-"), type=int,
                           default=getattr(defaults, field))
    model.add_argument("--rope-theta", type=float, default=defaults.rope_theta)
    model.add_argument("--rms-eps", type=float, default=defaults.rms_eps)
    model.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "tokenizer":
            write_tokenizer(args.source, args.target)
            print(f"{args.target}: tokenizer of {args.source}")
            return 0
        shape = Shape(args.n_embd, args.n_layer, args.n_head, args.n_head_kv, args.n_ff,
                      args.n_ctx_train, args.rope_theta, args.rms_eps)
        params = write_model(args.tokenizer, args.target, shape, seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"synthetic_model: {exc}", file=sys.stderr)
        return 1
    print(f"{args.target}: {params / 1e6:.1f}M parameters, F16, {shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
