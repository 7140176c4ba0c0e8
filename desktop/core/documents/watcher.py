"""Watched collections: their folders are checked for changes on a background thread for the
app's whole life, and a changed collection is re-indexed through the app's one Indexer.

Polling (a walk comparing names, sizes and modification times) rather than OS notifications:
it needs no Qt and no native library, sees changes in every sub-folder (inotify watches cost
one handle per folder), and costs a few stat calls per file every few seconds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from desktop.core.documents.index import SKIP_DIRS, DocumentIndex
from desktop.core.documents.indexer import Indexer

Snapshot = frozenset[tuple[str, int, int]]


def snapshot(roots: list[str]) -> Snapshot:
    """Every file under `roots` as (path, size, mtime_ns), skipping what indexing skips."""
    seen: set[tuple[str, int, int]] = set()
    for root in roots:
        if os.path.isdir(root):
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
                for name in files:
                    if not name.startswith("."):
                        _add(seen, os.path.join(folder, name))
        else:
            _add(seen, root)
    return frozenset(seen)


def _add(seen: set[tuple[str, int, int]], path: str) -> None:
    try:
        info = os.stat(path)
    except OSError:
        return  # gone between listing and stat: the next look sees it gone
    seen.add((path, info.st_size, info.st_mtime_ns))


class FolderWatcher:
    """Re-indexes a watched collection once its files changed and then held still for one
    more look (a burst of writes, or a large copy, is indexed once, when complete)."""

    def __init__(self, documents: DocumentIndex, indexer: Indexer,
                 interval_s: float = 2.0) -> None:
        self.documents = documents
        self.indexer = indexer
        self.interval_s = interval_s
        self._known: dict[int, Snapshot] = {}
        self._changed: dict[int, Snapshot] = {}  # collection -> the changed snapshot, settling
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_error: Callable[[BaseException], None] = lambda exc: None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="folder-watch")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def check(self) -> list[int]:
        """One look at every watched collection; returns the collections sent for indexing."""
        submitted = []
        watched = {c["id"] for c in self.documents.collections() if c["watch"]}
        for gone in set(self._known) - watched:  # unwatched: start afresh if watched again
            self._known.pop(gone, None)
            self._changed.pop(gone, None)
        for collection in watched:
            roots = [p for p in self.documents.paths(collection) if Path(p).exists()]
            now = snapshot(roots)
            before = self._known.get(collection)
            if before is None:
                # First look (app start, or watching just switched on): changes made while
                # nobody watched are found by comparing with what the index holds.
                self._known[collection] = now
                if self._stale(collection, now):
                    self.indexer.submit(collection, None, reason="watch")
                    submitted.append(collection)
                continue
            if now != before:
                if self._changed.get(collection) == now:  # changed, then held still: go
                    self._known[collection] = now
                    del self._changed[collection]
                    self.indexer.submit(collection, None, reason="watch")
                    submitted.append(collection)
                else:
                    self._changed[collection] = now
            else:
                self._changed.pop(collection, None)
        return submitted

    def _stale(self, collection: int, now: Snapshot) -> bool:
        indexed = {d["path"]: d["indexed_at"] or 0.0 for d in self.documents.documents(collection)}
        if {path for path, _, _ in now} != set(indexed):
            return True
        return any(mtime / 1e9 > indexed[path] for path, _, mtime in now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a closed database at exit, a bad folder
                if self._stop.is_set():
                    return
                self.on_error(exc)
