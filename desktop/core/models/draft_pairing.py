"""Which installed model drafts for a target (speculative decoding with a draft model).

A small model with the same vocabulary proposes a few tokens; the target checks them all in
one batched decode (engine_worker/draft_model.py) and keeps the prefix it agrees with, so the
reply is exactly the target's. That only works when both models give each token id the same
meaning: the vocabularies are compared by the tokenizer kind (tokenizer.ggml.model) and a
hash of the token strings (tokenizer.ggml.tokens) read from the GGUF headers.

The per-model setting `draft_model` says what to use: "auto" (the default: the smallest
compatible model in the library whose file is at most a quarter of the target's size), "off",
or the path of a GGUF file. Pure core: no llama_cpp here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from desktop.core.errors import HearthError
from desktop.core.models.gguf import GGUFInfo, read_gguf

AUTO, OFF = "auto", "off"
# A draft must be much cheaper than the target for its guesses to pay: at most this share of
# the target's file size (llama.cpp's own examples pair 0.5B drafts with 7B-70B targets).
MAX_SIZE_SHARE = 0.25

Fingerprint = tuple[str, int, str]  # (tokenizer kind, vocabulary size, sha256 of the tokens)

_cache: dict[tuple[str, int, int], Fingerprint | None] = {}
_cache_lock = threading.Lock()


def vocab_fingerprint(source: str | Path | GGUFInfo) -> Fingerprint | None:
    """The vocabulary's identity from a GGUF header, or None when the file lists no tokens.

    Hashing the token strings' bytes as they lie in the file costs a few milliseconds for a
    262k vocabulary; results are cached per file (path, size, modification time)."""
    info: GGUFInfo | None
    if isinstance(source, GGUFInfo):
        info, path = source, source.path
    else:
        info, path = None, Path(source)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    if info is None:
        info = read_gguf(path)
    span = info.token_span
    found: Fingerprint | None = None
    if span is not None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            handle.seek(span[0])
            left = span[1] - span[0]
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
        found = (str(info.get("tokenizer.ggml.model") or "unknown"),
                 info.array_lengths.get("tokenizer.ggml.tokens", 0), digest.hexdigest())
    with _cache_lock:
        _cache[key] = found
    return found


def incompatibility(target: GGUFInfo, draft: GGUFInfo) -> str | None:
    """One sentence saying why `draft` cannot draft for `target`, or None when it can."""
    mine, theirs = vocab_fingerprint(target), vocab_fingerprint(draft)
    if mine is not None and mine == theirs:
        return None

    def describe(fp: Fingerprint | None) -> str:
        return "no vocabulary" if fp is None else f"a {fp[0]} vocabulary of {fp[1]:,} tokens"

    same_shape = mine is not None and theirs is not None and mine[:2] == theirs[:2]
    detail = "the same size but different tokens" if same_shape else \
        f"{describe(theirs)} against {describe(mine)}"
    return (f"{draft.path.name} cannot draft for {target.path.name}: their vocabularies "
            f"differ ({detail}), so the model runs without a draft model.")


def _is_projector_or_embedding(metadata: dict[str, Any], path: str) -> bool:
    name = Path(path).name.lower()
    return bool(metadata.get("embedding_only")) or metadata.get("architecture") == "clip" \
        or "mmproj" in name


def auto_draft(target: str | Path, candidates: Iterable[tuple[str, dict[str, Any]]]
               ) -> str | None:
    """The smallest compatible model among `candidates` ((path, library metadata) pairs)
    whose file is at most a quarter of the target's; None when there is none."""
    target = Path(target)
    try:
        target_size = target.stat().st_size
    except OSError:
        return None
    sized = []
    for path, metadata in candidates:
        if _is_projector_or_embedding(metadata, path):
            continue
        try:
            size = os.stat(path).st_size
            if os.path.samefile(path, target):
                continue
        except OSError:
            continue  # a file that is gone drafts nothing
        if size * 4 <= target_size:  # MAX_SIZE_SHARE, in integers
            sized.append((size, path))
    if not sized:
        return None
    try:
        mine = vocab_fingerprint(target)
    except HearthError:
        return None
    if mine is None:
        return None
    for _, path in sorted(sized):
        try:
            if vocab_fingerprint(path) == mine:
                return path
        except HearthError:
            continue  # an unreadable file is simply not a candidate
    return None


def choose_draft(target: str | Path, setting: Any,
                 candidates: Iterable[tuple[str, dict[str, Any]]]) -> str | None:
    """The draft model path to load beside `target` for its `draft_model` setting ("auto",
    "off", or a path; anything else counts as "auto"). An explicit path is passed on as it
    is: the worker checks it and says in one sentence why it is not used, if it is not."""
    if not isinstance(setting, str) or not setting.strip() or setting == AUTO:
        return auto_draft(target, candidates)
    if setting == OFF:
        return None
    return os.path.abspath(os.path.expanduser(setting))


def draft_for_library(library: Any, target: str | Path, setting: Any) -> str | None:
    """choose_draft over the models installed in `library` (a ModelLibrary)."""
    if setting == OFF:
        return None  # no need to list the library
    if isinstance(setting, str) and setting.strip() and setting != AUTO:
        return choose_draft(target, setting, [])
    return choose_draft(target, setting, ((e.path, e.metadata) for e in library.list()))
