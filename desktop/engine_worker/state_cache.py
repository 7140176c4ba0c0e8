"""Per-conversation KV state cache: switching back to a chat restores its KV cache instead of
re-reading the whole history.

States live in RAM (LRU within a byte budget) and optionally on disk. They are keyed to a
fingerprint of the model file, so a state is never applied to another model. A state read
from disk is untrusted input: its header is bounded and checked, its token ids must be in the
vocabulary, and its bytes must match the SHA-256 recorded when it was written, before
llama.cpp ever sees it.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

FORMAT_VERSION = 1
MAX_HEADER = 16 * 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def model_fingerprint(path: Path) -> str:
    """Cheap identity of a model file: size plus its first and last MiB (hashing GBs would
    delay every load); a re-downloaded or edited file gets a new fingerprint."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:32]


@dataclass
class SavedState:
    tokens: list[int]
    blob: bytes

    @property
    def nbytes(self) -> int:
        return len(self.blob) + 4 * len(self.tokens)


def snapshot(ctx: object) -> bytes:
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    return ctypes.string_at(buffer, written)


def restore(ctx: object, blob: bytes) -> bool:
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    buffer = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
    return llama_cpp.llama_state_seq_set_data(ctx, buffer, len(blob), 0) > 0


class StateCache:
    def __init__(self, model_id: str, n_vocab: int, budget_bytes: int,
                 directory: Path | None = None, *, disk_budget_bytes: int = 2 << 30) -> None:
        self.model_id = model_id
        self.n_vocab = n_vocab
        self.budget = budget_bytes
        self.root = directory
        self.directory = directory / model_id if directory else None
        self.disk_budget = disk_budget_bytes
        self.ram: OrderedDict[str, SavedState] = OrderedDict()
        self.hits = self.misses = 0

    def _file(self, session: str) -> Path | None:
        if self.directory is None or not _SAFE_NAME.match(session):
            return None
        return self.directory / f"{session}.kvstate"

    def put(self, session: str, tokens: list[int], blob: bytes) -> None:
        state = SavedState(list(tokens), blob)
        self.ram[session] = state
        self.ram.move_to_end(session)
        while sum(s.nbytes for s in self.ram.values()) > self.budget and len(self.ram) > 1:
            self.ram.popitem(last=False)
        path = self._file(session)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = json.dumps({"version": FORMAT_VERSION, "model": self.model_id,
                                 "tokens": state.tokens,
                                 "sha256": hashlib.sha256(blob).hexdigest()}).encode()
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as handle:
                handle.write(len(header).to_bytes(8, "little") + header + blob)
            os.replace(tmp, path)
            self._evict_disk(keep=path)

    def _evict_disk(self, keep: Path) -> None:
        """Least recently used states (of any model) go first when the folder is over budget;
        reading a state touches its file."""
        assert self.root is not None
        files = []
        for file in self.root.glob("*/*.kvstate"):
            try:
                stat = file.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, file))
        total = sum(size for _, size, _ in files)
        for _, size, file in sorted(files, key=lambda f: f[0]):
            if total <= self.disk_budget:
                break
            if file != keep:
                file.unlink(missing_ok=True)
                total -= size

    def get(self, session: str) -> SavedState | None:
        state = self.ram.get(session)
        if state is None:
            state = self._read(session)
        if state is None:
            self.misses += 1
            return None
        self.ram[session] = state
        self.ram.move_to_end(session)
        self.hits += 1
        return state

    def drop(self, session: str) -> None:
        self.ram.pop(session, None)
        path = self._file(session)
        if path is not None:
            path.unlink(missing_ok=True)

    def _read(self, session: str) -> SavedState | None:
        path = self._file(session)
        if path is None or not path.is_file():
            return None
        try:
            with path.open("rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                if not 0 < length <= MAX_HEADER:
                    raise ValueError("bad header length")
                header = json.loads(handle.read(length))
                blob = handle.read()
            tokens = header["tokens"]
            valid = (header.get("version") == FORMAT_VERSION
                     and header.get("model") == self.model_id
                     and isinstance(tokens, list)
                     # Negative ids stand for image positions (multimodal.py's pseudo ids).
                     and all(isinstance(t, int) and -(1 << 48) < t < self.n_vocab
                             for t in tokens)
                     and hashlib.sha256(blob).hexdigest() == header.get("sha256"))
            if not valid:
                raise ValueError("state does not match its model or its checksum")
            os.utime(path)  # recently used: the last to be evicted
            return SavedState(tokens, blob)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"[worker] discarding KV state {path.name}: {exc}", flush=True)
            path.unlink(missing_ok=True)
            return None
