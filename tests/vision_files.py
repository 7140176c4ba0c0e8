"""A tiny, real vision projector (mmproj GGUF) and real images, written by the tests.

No small vision model ships through the package index, so the tests build a projector
themselves: a Gemma 3 style SigLIP encoder (projector type "gemma3", as llama.cpp's
tools/mtmd/clip.cpp reads it) with 2 blocks of width 32 and deterministic random weights,
whose output width is the Gemma 3 270M test model's n_embd (640). libmtmd loads it through
the same code as a real Gemma 3 mmproj: preprocessing (resize to 64x64, normalise), the ViT
graph, the pooling and projection, and the image embeddings are decoded into the text
model's KV cache. What it cannot show: that answers describe the image (weights are random).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

TEXT_EMBD = 640  # Gemma 3 270M's n_embd
IMAGE_SIZE = 64
PATCH = 8
MERGE = 2  # pooling kernel per side: (64/8/2)^2 = 16 image tokens
WIDTH = 32
FFN = 64
HEADS = 2
BLOCKS = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH // MERGE) ** 2


def write_tiny_mmproj(path: Path, *, text_embd: int = TEXT_EMBD, seed: int = 1234) -> Path:
    rng = np.random.default_rng(seed)

    def weight(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = GGUFWriter(str(path), "clip")
    writer.add_name("hearth tiny test projector (random weights)")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH)
    writer.add_uint32("clip.vision.embedding_length", WIDTH)
    writer.add_uint32("clip.vision.feed_forward_length", FFN)
    writer.add_uint32("clip.vision.block_count", BLOCKS)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.attention.head_count", HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.projector.scale_factor", MERGE)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    n_patches = (IMAGE_SIZE // PATCH) ** 2
    # numpy shapes are ggml's ne reversed: a (rows, cols) array is ne = [cols, rows].
    tensors = {
        "v.patch_embd.weight": weight(WIDTH, 3, PATCH, PATCH),
        "v.patch_embd.bias": weight(WIDTH),
        "v.position_embd.weight": weight(n_patches, WIDTH),
        "v.post_ln.weight": np.ones(WIDTH, dtype=np.float32),
        "v.post_ln.bias": np.zeros(WIDTH, dtype=np.float32),
        "mm.soft_emb_norm.weight": np.ones(WIDTH, dtype=np.float32),
        # Used transposed by the gemma3 graph: ne = [text_embd, WIDTH].
        "mm.input_projection.weight": weight(WIDTH, text_embd),
    }
    for i in range(BLOCKS):
        block = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"{block}.{name}.weight"] = weight(WIDTH, WIDTH)
            tensors[f"{block}.{name}.bias"] = weight(WIDTH)
        for name in ("ln1", "ln2"):
            tensors[f"{block}.{name}.weight"] = np.ones(WIDTH, dtype=np.float32)
            tensors[f"{block}.{name}.bias"] = np.zeros(WIDTH, dtype=np.float32)
        tensors[f"{block}.ffn_up.weight"] = weight(FFN, WIDTH)  # ne = [WIDTH, FFN]
        tensors[f"{block}.ffn_up.bias"] = weight(FFN)
        tensors[f"{block}.ffn_down.weight"] = weight(WIDTH, FFN)  # ne = [FFN, WIDTH]
        tensors[f"{block}.ffn_down.bias"] = weight(WIDTH)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def png_bytes(width: int = 40, height: int = 30, color: tuple[int, int, int] = (200, 40, 40),
              ) -> bytes:
    """A real PNG (zlib-compressed RGB rows, written by hand: no imaging library needed)."""
    import struct
    import zlib

    row = b"\x00" + bytes(color) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = io.BytesIO()
    out.write(b"\x89PNG\r\n\x1a\n")
    out.write(chunk(b"IHDR", header))
    out.write(chunk(b"IDAT", zlib.compress(raw)))
    out.write(chunk(b"IEND", b""))
    return out.getvalue()


def write_png(path: Path, **kwargs: object) -> Path:
    path.write_bytes(png_bytes(**kwargs))  # type: ignore[arg-type]
    return path
