"""Images through llama.cpp's libmtmd: the projector (mmproj) loaded beside the text model.

The runner's record of the KV cache (`cache_tokens`) is a list of token ids, and prefix reuse
compares it with the new prompt. An image becomes a fixed run of *pseudo ids* there: negative
numbers derived from the SHA-256 of the image bytes, one per KV position the image takes. The
same image at the same place gives the same run, so a text turn after an image turn reuses the
cache across the image; a different image differs from its first position on. A common prefix
that ends inside an image run is moved back to the run's start (`snap`): an image is evaluated
whole or not at all.

Each image is tokenized once (libmtmd preprocesses and splits it into chunks: text tokens
such as <start_of_image> plus the image chunk) and its chunks are kept for a few images, so
a prompt that needs the image again (after the cache was cleared) encodes it from memory.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd

from desktop.core.errors import EngineError, ModelFileError
from desktop.core.models.gguf import read_gguf

SPAN = 1 << 16  # pseudo ids per image (an image of more positions would collide: refused)
KEEP_IMAGES = 8  # tokenized images kept in memory (a preprocessed image is up to ~10 MB)


def pseudo_ids(sha256: str, n_pos: int) -> list[int]:
    """The run of ids standing for an image in the KV record: consecutive, negative (never a
    real token), the same for the same bytes."""
    if n_pos >= SPAN:
        raise EngineError(f"This image needs {n_pos} positions; Hearth takes at most {SPAN - 1}.")
    base = int(sha256[:8], 16) * SPAN
    return [-(1 + base + j) for j in range(n_pos)]


def is_image(token: int) -> bool:
    return token < 0


def snap(prompt: list[int], common: int) -> int:
    """Move a common-prefix length that ends inside an image run back to the run's start."""
    while 0 < common < len(prompt) and prompt[common] < 0 and prompt[common - 1] == prompt[common] + 1:
        common -= 1
    return common


@dataclass
class _Image:
    sha256: str
    path: str
    chunks: Any  # mtmd_input_chunks owned here
    tokens: list[int] = field(default_factory=list)  # text ids and pseudo ids, in order
    image_chunks: dict[int, Any] = field(default_factory=dict)  # first pseudo id -> chunk


class Vision:
    """An mtmd context for one loaded text model."""

    def __init__(self, llm: llama_cpp.Llama, mmproj: str, *, n_threads: int,
                 use_gpu: bool) -> None:
        # A projector file is untrusted input too: its header is checked before libmtmd reads it.
        read_gguf(Path(mmproj), projector=True)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        self.llm = llm
        self.path = mmproj
        # llama.cpp prints why a projector fails (wrong n_embd, unknown type) to the log.
        self.ctx = mtmd.mtmd_init_from_file(mmproj.encode("utf-8"), llm.model, params)
        if not self.ctx:
            raise ModelFileError(
                f"llama.cpp could not load the vision projector {Path(mmproj).name}: it does not "
                "belong to this model, or it is not a projector file (details in the engine log).",
                details=mmproj)
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ModelFileError(f"{Path(mmproj).name} is a projector without vision (audio only).",
                                 details=mmproj)
        self.images: OrderedDict[str, _Image] = OrderedDict()
        self.by_path: dict[str, str] = {}  # image path -> sha256, for re-tokenizing
        self.spans: dict[int, str] = {}  # first pseudo id -> sha256

    def close(self) -> None:
        for image in self.images.values():
            mtmd.mtmd_input_chunks_free(image.chunks)
        self.images.clear()
        if self.ctx:
            mtmd.mtmd_free(self.ctx)
            self.ctx = None

    # --- tokenize ----------------------------------------------------------------------
    def tokens(self, path: str) -> list[int]:
        """The ids an image part adds to the prompt (its text markers and its pseudo ids)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EngineError(f"The image {Path(path).name} could not be read: {exc.strerror}.",
                              details=path) from exc
        sha = hashlib.sha256(data).hexdigest()
        image = self.images.get(sha)
        if image is None:
            image = self._tokenize(sha, path, data)
        self.images.move_to_end(sha)
        return image.tokens

    def _tokenize(self, sha: str, path: str, data: bytes) -> _Image:
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self.ctx, buffer, len(data), False)
        if not bitmap:
            raise EngineError(f"{Path(path).name} is not an image llama.cpp can read (PNG, JPEG, "
                              "GIF, BMP and the like work).", details=path)
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            part = mtmd.mtmd_input_part()
            part.text = None  # type: ignore[assignment]  # a NULL pointer: no text in this part
            part.bitmap = bitmap
            parts = (ctypes.POINTER(mtmd.mtmd_input_part) * 1)(ctypes.pointer(part))
            # From parts, not from text with markers: a user can never smuggle a marker in.
            rc = mtmd.mtmd_tokenize_from_parts(self.ctx, chunks, parts, 1, False)
        finally:
            mtmd.mtmd_bitmap_free(bitmap)  # the chunks hold the preprocessed image
        if rc != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise EngineError(f"llama.cpp could not prepare the image {Path(path).name} "
                              f"(mtmd_tokenize={rc}).", details=path)
        image = _Image(sha, path, chunks)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind = mtmd.mtmd_input_chunk_get_type(chunk)
            if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                image.tokens.extend(int(ids[j]) for j in range(count.value))
            elif kind == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                # Each image chunk (a tile of a sliced image, or the whole image) gets its own
                # run, seeded by the image hash and the chunk's index.
                run = pseudo_ids(hashlib.sha256(f"{sha}:{i}".encode()).hexdigest(),
                                 int(mtmd.mtmd_input_chunk_get_n_pos(chunk)))
                image.image_chunks[run[0]] = chunk
                self.spans[run[0]] = sha
                image.tokens.extend(run)
            else:
                mtmd.mtmd_input_chunks_free(chunks)
                raise EngineError(f"{Path(path).name} is not an image.", details=path)
        self.images[sha] = image
        self.by_path[path] = sha
        while len(self.images) > KEEP_IMAGES:
            _, old = self.images.popitem(last=False)
            mtmd.mtmd_input_chunks_free(old.chunks)
        return image

    def count(self, path: str) -> int:
        return len(self.tokens(path))

    def _chunk(self, first_id: int) -> Any:
        sha = self.spans.get(first_id)
        image = self.images.get(sha) if sha else None
        if image is None and sha is not None:
            # Evicted since the prompt was built: tokenize it again from its file.
            path = next((p for p, s in self.by_path.items() if s == sha), None)
            if path is not None:
                self.tokens(path)
                image = self.images.get(sha)
        if image is None or first_id not in image.image_chunks:
            raise EngineError("An image of this chat is no longer available to the engine.")
        return image.image_chunks[first_id]

    # --- decode ------------------------------------------------------------------------
    def decode(self, tokens: list[int], n_past: int,
               decode_text: Callable[[list[int]], None]) -> None:
        """Evaluate `tokens` (text ids and whole image runs) from position `n_past` on: text
        through `decode_text`, each image run through libmtmd (encode, then decode the
        embeddings into the KV cache, non-causally where the model wants it)."""
        i = 0
        while i < len(tokens):
            j = i
            if tokens[i] >= 0:
                while j < len(tokens) and tokens[j] >= 0:
                    j += 1
                decode_text(tokens[i:j])
            else:
                chunk = self._chunk(tokens[i])
                n_pos = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
                new_past = llama_cpp.llama_pos(0)
                rc = mtmd.mtmd_helper_eval_chunk_single(
                    self.ctx, self.llm.ctx, chunk, n_past + i, 0, self.llm.n_batch, False,
                    ctypes.byref(new_past))
                if rc != 0:
                    raise EngineError(f"llama.cpp could not read the image (mtmd eval={rc}); "
                                      "the context may be full.")
                j = i + n_pos
            i = j
