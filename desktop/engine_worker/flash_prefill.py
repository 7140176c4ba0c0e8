"""Long prompts read with flash attention for a model that generates without it.

On a CPU, llama.cpp's flash-attention kernel is the faster one for reading a long prompt (its
tiled path takes 512 queries at a time: SmolLM2 read 1,850 tokens ~12% faster with it) and the
far slower one for generating after that prompt and for short follow-ups, where it reads the KV
cache row by row per head (SmolLM2: 30 against 70 tokens/s at 1,024 tokens of context). So
where Automatic turns flash attention off for a model (decode_loop.effective_flash), a long new
part of a prompt is read in a short-lived second context of the same model with flash attention
on, and its KV cache is moved into the model's own context, which then decodes the prompt's last
token (for its logits) and generates as before. Measured here (SmolLM2, 1,850 tokens, 2
threads): 8.0 s against 9.0 s, of which creating the side context, moving the cache and the last
token take ~0.15 s. See docs/DESIGN.md, section 10.

The move goes through llama.cpp's sequence state (llama_state_seq_get_data / _set_data). The
two contexts lay out V differently: with flash attention a cell's V is a row, without it V is
stored transposed (llama_kv_cache::v_trans), and llama.cpp refuses a state whose layout is not
its own. `relayout_v` rewrites the V blocks of a state from one layout to the other, in place:
the header of a V block has the same size both ways (type, then a row size, or an element size
and a row length). The format is llama-kv-cache.cpp's state_write_meta / state_write_data of the
vendored llama.cpp; anything that does not parse exactly as that (another cache kind, cells with
extra data, an unexpected type) makes `relayout_v` return False and the prompt is read the plain
way, so a format change costs the speed-up, never a wrong cache.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from typing import Any

import llama_cpp
import numpy as np
import psutil

MIN_NEW_TOKENS = 512  # below llama.cpp's 512-query tile the side context gains nothing
STATE_MAGIC = 0xAF143CD8  # llama-context.cpp io_magic: the start of every sequence state
# V element types that can be transposed element by element: f32, f16, bf16 (ggml type ids).
_ELEMENT: dict[int, np.dtype[Any]] = {0: np.dtype("<u4"), 1: np.dtype("<u2"), 30: np.dtype("<u2")}
_MULTI_AXIS_ROPE = (llama_cpp.LLAMA_ROPE_TYPE_MROPE, llama_cpp.LLAMA_ROPE_TYPE_IMROPE,
               llama_cpp.LLAMA_ROPE_TYPE_VISION)


def relayout_v(state: Any, to_transposed: bool) -> bool:
    """Rewrite, in place, the V blocks of llama.cpp sequence state `state` (a writable buffer)
    from rows per cell to transposed (`to_transposed`) or back. False, with `state` possibly
    half rewritten, where the state is not a plain KV cache of one sequence in the other layout."""
    data = memoryview(state).cast("B")
    size = len(data)
    raw = np.frombuffer(data, dtype=np.uint8)
    try:
        magic, _seq = struct.unpack_from("<Ii", data, 0)
        if magic != STATE_MAGIC:
            return False
        offset = 8
        while offset < size:  # one KV cache, or two for a sliding-window model's pair
            (n_stream,) = struct.unpack_from("<I", data, offset)
            offset += 4
            if n_stream != 1:
                return False
            (cells,) = struct.unpack_from("<I", data, offset)
            offset += 4
            if cells == 0:
                continue
            for cell in range(cells):  # a position and the sequences holding it: only seq 0
                pos, n_seq = struct.unpack_from("<iI", data, offset)
                if pos != cell or n_seq != 1 or struct.unpack_from("<i", data, offset + 8)[0]:
                    return False
                offset += 12
            v_trans, n_layer = struct.unpack_from("<II", data, offset)
            if v_trans != (0 if to_transposed else 1) or not 0 < n_layer < 10_000:
                return False
            struct.pack_into("<I", data, offset, 1 if to_transposed else 0)
            offset += 8
            for _ in range(n_layer):  # K: rows per cell in both layouts
                _k_type, row = struct.unpack_from("<iQ", data, offset)
                offset += 12 + cells * row
            for _ in range(n_layer):
                offset = _relayout_block(data, raw, offset, cells, to_transposed)
                if offset < 0:
                    return False
        return offset == size
    except struct.error:  # ran past the end: not the format this was written for
        return False


def _relayout_block(data: memoryview, raw: np.ndarray, offset: int, cells: int,
                    to_transposed: bool) -> int:
    """One layer's V block at `offset`, rewritten; the offset after it, or -1."""
    if to_transposed:
        v_type, row = struct.unpack_from("<iQ", data, offset)
        dtype = _ELEMENT.get(v_type)
        if dtype is None or row % dtype.itemsize:
            return -1
        width = row // dtype.itemsize
        struct.pack_into("<iII", data, offset, v_type, dtype.itemsize, width)
    else:
        v_type, element, width = struct.unpack_from("<iII", data, offset)
        dtype = _ELEMENT.get(v_type)
        if dtype is None or element != dtype.itemsize:
            return -1
        struct.pack_into("<iQ", data, offset, v_type, width * dtype.itemsize)
    offset += 12
    end = offset + cells * width * dtype.itemsize
    if end > len(raw):
        return -1
    block = raw[offset:end].view(dtype)
    shape = (cells, width) if to_transposed else (width, cells)
    block[:] = block.reshape(shape).T.copy().ravel()
    return end


def side_flash(asked: str, used: str) -> bool:
    """Whether a model loaded with flash attention `used` for the setting `asked` reads long
    prompts in a side context: only where Automatic chose off (an explicit Off is kept, and so
    is HEARTH_FLASH_ATTN, which decode_loop.flash_attention applies to every load)."""
    return asked == "auto" and used == "off" and os.environ.get("HEARTH_FLASH_ATTN", "") in (
        "", "auto")


def suits(model: Any) -> bool:
    """Whether `model`'s KV cache is one plain cache this module can move: no sliding window
    (its second cache drops masked cells on save), no recurrent state, no multi-axis positions."""
    return (llama_cpp.llama_model_n_swa(model) == 0
            and not llama_cpp.llama_model_is_recurrent(model)
            and not llama_cpp.llama_model_is_hybrid(model)
            and llama_cpp.llama_model_rope_type(model) not in _MULTI_AXIS_ROPE)


class FlashPrefill:
    """Reads long new prompt parts for one loaded model in a flash-attention side context."""

    def __init__(self, model: Any, n_batch: int, n_threads: int, n_threads_batch: int) -> None:
        self.model = model
        self.n_batch = n_batch
        self.n_threads = n_threads
        self.n_threads_batch = n_threads_batch

    def worth(self, cached: int, new: int) -> bool:
        """A long new part, at least as long as what is cached (the cached part crosses twice)."""
        return new - 1 >= MIN_NEW_TOKENS and new >= cached

    def read(self, ctx: Any, prompt: list[int], cached: int,
             decode: Callable[[Any, list[int], int], None]) -> int:
        """Bring `ctx`, holding prompt[:cached], to all of `prompt`; returns how many tokens of
        `prompt` ctx holds afterwards: all of them, or `cached` (or 0) where the side route could
        not be taken and the caller reads the rest the plain way. `decode(ctx, tokens, done)`
        decodes tokens into a context, `done` new ones before them (for progress). An error or a
        cancel while reading leaves `ctx` as it was."""
        if not self._room_for(len(prompt)):
            return cached
        side = self._side_context(len(prompt))
        if side is None:
            return cached
        try:
            if cached:
                prefix = _state(ctx)
                if prefix is None or not relayout_v(prefix, to_transposed=False) \
                        or not _set_state(side, prefix):
                    return cached
                del prefix
            decode(side, prompt[cached:-1], 0)
            state = _state(side)
        finally:
            llama_cpp.llama_free(side)  # before the move: its KV cache is as big as the state
        if state is None or not relayout_v(state, to_transposed=True):
            return cached
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_clear(mem, True)
        if not _set_state(ctx, state):  # llama.cpp refused it (and left nothing behind)
            llama_cpp.llama_memory_clear(mem, True)
            return 0
        del state
        decode(ctx, prompt[-1:], len(prompt) - cached - 1)  # its logits come from ctx
        return len(prompt)

    def _room_for(self, n_tokens: int) -> bool:
        """Whether the side context's KV cache and the state in flight (each about the size of
        the prompt's cache in f16) fit in the memory free now, with room to spare: a long
        prompt on a big model must not push the machine into swap for a 12% gain."""
        model = self.model
        heads = max(1, llama_cpp.llama_model_n_head(model))
        kv_width = llama_cpp.llama_model_n_embd(model) * llama_cpp.llama_model_n_head_kv(model)
        per_token = 2 * 2 * kv_width // heads * llama_cpp.llama_model_n_layer(model)  # K+V, f16
        return 3 * per_token * n_tokens < psutil.virtual_memory().available

    def _side_context(self, n_tokens: int) -> Any:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = (n_tokens + 255) // 256 * 256
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = 1
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads_batch
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(self.model, params)
        return ctx or None  # NULL: out of memory, or no flash attention for this model here


def _state(ctx: Any) -> Any:
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    if not size:
        return None
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    if written != size:
        return None
    return buffer


def _set_state(ctx: Any, buffer: Any) -> bool:
    return bool(llama_cpp.llama_state_seq_set_data(ctx, buffer, len(buffer), 0))

