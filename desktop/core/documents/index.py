"""Collections, incremental and resumable indexing, and per-file errors.

Each file is one transaction: its old chunks go, its new chunks, FTS rows and embeddings come,
together. A kill loses at most the file in progress, and re-adding skips files whose content
hash is unchanged, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.documents.chunk import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_sections
from desktop.core.documents.extract import SUPPORTED, DocumentError, extract, kind_of
from desktop.core.errors import HearthError, NotFound
from desktop.core.store.db import Database

Embedder = Callable[[list[str]], list[list[float]]]
EMBED_BATCH = 32
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}


@dataclass
class IndexLimits:
    max_file_mb: float = 100.0
    max_chunks_per_file: int = 20_000
    chunk_size: int = DEFAULT_SIZE
    chunk_overlap: int = DEFAULT_OVERLAP


@dataclass
class IndexState:
    """Progress of one indexing run, shared with whoever shows it; `cancel()` stops between files."""

    files_total: int = 0
    files_done: int = 0
    chunks_done: int = 0
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    errors: list[tuple[str, str]] = field(default_factory=list)
    indexed: int = 0  # files read and indexed in this run (not unchanged, not failed)
    skipped_unchanged: int = 0
    removed: int = 0
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def chunks_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.chunks_done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.files_done:
            return None
        per_file = (time.monotonic() - self.started) / self.files_done
        return per_file * (self.files_total - self.files_done)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def walk(paths: Iterable[Path]) -> list[Path]:
    """Files under the given files/folders, sorted; hidden and tool folders are skipped."""
    found: list[Path] = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
        else:
            found.append(path)
    return found


class DocumentIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- collections -----------------------------------------------------------------
    def create_collection(self, name: str, conversation_id: int | None = None) -> int:
        name = name.strip()
        if not name:
            raise HearthError("A collection needs a name.")
        if self.db.query("SELECT 1 FROM collections WHERE name = ?", (name,)):
            raise HearthError(f"There is already a collection named “{name}”.")
        cur = self.db.execute(
            "INSERT INTO collections(name, conversation_id, created_at) VALUES (?, ?, ?)",
            (name, conversation_id, time.time()))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def collection_id(self, name: str, create: bool = False) -> int:
        rows = self.db.query("SELECT id FROM collections WHERE name = ?", (name,))
        if rows:
            return int(rows[0]["id"])
        if create:
            return self.create_collection(name)
        raise NotFound(f"There is no collection named “{name}”.")

    def chat_collection(self, conversation_id: int) -> int:
        """The hidden collection of files dropped straight into one chat."""
        rows = self.db.query("SELECT id FROM collections WHERE conversation_id = ?",
                             (conversation_id,))
        if rows:
            return int(rows[0]["id"])
        collection = self.create_collection(f"chat:{conversation_id}", conversation_id)
        self.attach(conversation_id, collection)
        return collection

    def collections(self, include_chat: bool = False) -> list[dict[str, Any]]:
        rows = self.db.query(
            """SELECT c.id, c.name, c.conversation_id, c.watch,
                      COUNT(d.id) AS files,
                      COALESCE(SUM(d.chunk_count), 0) AS chunks,
                      COALESCE(SUM(d.status = 'failed'), 0) AS failed
               FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
               GROUP BY c.id ORDER BY c.name""")
        return [dict(r) for r in rows if include_chat or r["conversation_id"] is None]

    def rename_collection(self, collection_id: int, name: str) -> None:
        if self.db.query("SELECT 1 FROM collections WHERE name = ? AND id != ?",
                         (name.strip(), collection_id)):
            raise HearthError(f"There is already a collection named “{name}”.")
        self.db.execute("UPDATE collections SET name = ? WHERE id = ?",
                        (name.strip(), collection_id))

    def delete_collection(self, collection_id: int) -> None:
        self.db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

    def set_watch(self, collection_id: int, watch: bool) -> None:
        self.db.execute("UPDATE collections SET watch = ? WHERE id = ?", (int(watch), collection_id))

    def paths(self, collection_id: int) -> list[str]:
        return [r["path"] for r in self.db.query(
            "SELECT path FROM collection_paths WHERE collection_id = ? ORDER BY path",
            (collection_id,))]

    def attach(self, conversation_id: int, collection_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO conversation_collections VALUES (?, ?)",
                        (conversation_id, collection_id))

    def detach(self, conversation_id: int, collection_id: int) -> None:
        self.db.execute("DELETE FROM conversation_collections WHERE conversation_id = ? AND "
                        "collection_id = ?", (conversation_id, collection_id))

    def attached(self, conversation_id: int) -> list[int]:
        return [int(r["collection_id"]) for r in self.db.query(
            "SELECT collection_id FROM conversation_collections WHERE conversation_id = ?",
            (conversation_id,))]

    def documents(self, collection_id: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT d.*, c.name AS collection FROM documents d JOIN collections c "
               "ON c.id = d.collection_id")
        if collection_id is not None:
            return [dict(r) for r in self.db.query(sql + " WHERE d.collection_id = ? ORDER BY "
                                                   "d.path", (collection_id,))]
        return [dict(r) for r in self.db.query(sql + " ORDER BY c.name, d.path")]

    def chunk(self, chunk_id: int) -> dict[str, Any]:
        rows = self.db.query("SELECT c.*, d.path FROM chunks c JOIN documents d ON "
                             "d.id = c.document_id WHERE c.id = ?", (chunk_id,))
        if not rows:
            raise NotFound(f"There is no passage {chunk_id}.")
        return dict(rows[0])

    # --- indexing --------------------------------------------------------------------
    def add_paths(self, collection_id: int, paths: list[str | Path], *,
                  embedder: Embedder | None = None, embed_model: str | None = None,
                  limits: IndexLimits | None = None, state: IndexState | None = None,
                  remember: bool = True) -> IndexState:
        """Index files and folders into a collection; only new or changed files are read."""
        limits = limits or IndexLimits()
        state = state or IndexState()
        roots = [Path(os.path.abspath(Path(p).expanduser())) for p in paths]
        missing = [r for r in roots if not r.exists()]
        for root in missing:
            state.errors.append((str(root), "no such file or folder."))
        if remember:
            for root in roots:
                if root not in missing:  # a mistyped path is not kept and re-read forever
                    self.db.execute("INSERT OR IGNORE INTO collection_paths VALUES (?, ?)",
                                    (collection_id, str(root)))
        files = walk(r for r in roots if r.exists())
        state.files_total = len(files)
        state.removed += self._forget_deleted(collection_id, roots, set(map(str, files)))
        for path in files:
            if state.cancelled:
                break
            state.current = str(path)
            unchanged = state.skipped_unchanged
            try:
                self._index_file(collection_id, path, embedder, embed_model, limits, state)
                state.indexed += state.skipped_unchanged == unchanged
            except DocumentError as exc:
                self._record(collection_id, path, "failed" if kind_of(path) else "skipped",
                             exc.message)
                state.errors.append((str(path), exc.message))
            except HearthError as exc:  # the embedding model failed: keep the file's text
                state.errors.append((str(path), exc.message))
            state.files_done += 1
        state.current = ""
        return state

    def reindex(self, collection_id: int, **options: Any) -> IndexState:
        return self.add_paths(collection_id, list(self.paths(collection_id)), remember=False,
                              **options)

    def remove_paths(self, collection_id: int, paths: list[str | Path]) -> int:
        removed = 0
        for path in paths:
            absolute = os.path.abspath(Path(path).expanduser())
            self.db.execute("DELETE FROM collection_paths WHERE collection_id = ? AND path = ?",
                            (collection_id, absolute))
            cur = self.db.execute(
                "DELETE FROM documents WHERE collection_id = ? AND (path = ? OR path LIKE ?)",
                (collection_id, absolute, absolute.rstrip(os.sep) + os.sep + "%"))
            removed += cur.rowcount
        return removed

    def _forget_deleted(self, collection_id: int, roots: list[Path], present: set[str]) -> int:
        removed = 0
        for row in self.documents(collection_id):
            path = Path(row["path"])
            under = any(path == r or r in path.parents for r in roots)
            if under and row["path"] not in present:
                self.db.execute("DELETE FROM documents WHERE id = ?", (row["id"],))
                removed += 1
        return removed

    def _record(self, collection_id: int, path: Path, status: str, error: str | None) -> None:
        self.db.execute(
            "INSERT INTO documents(collection_id, path, kind, status, error, indexed_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(collection_id, path) DO UPDATE SET"
            " status = excluded.status, error = excluded.error, content_hash = NULL,"
            " chunk_count = 0, indexed_at = excluded.indexed_at",
            (collection_id, str(path), kind_of(path), status, error, time.time()))
        if status != "indexed":
            self.db.execute("DELETE FROM chunks WHERE document_id = (SELECT id FROM documents "
                            "WHERE collection_id = ? AND path = ?)", (collection_id, str(path)))

    def _index_file(self, collection_id: int, path: Path, embedder: Embedder | None,
                    embed_model: str | None, limits: IndexLimits, state: IndexState) -> None:
        if path.suffix.lower() not in SUPPORTED:
            extract(path, 0)  # raises the "not supported" DocumentError
        try:
            digest = file_hash(path)
        except OSError as exc:
            raise DocumentError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
        rows = self.db.query("SELECT id, content_hash, status FROM documents WHERE "
                             "collection_id = ? AND path = ?", (collection_id, str(path)))
        if rows and rows[0]["content_hash"] == digest and rows[0]["status"] == "indexed":
            if embedder is None or self._has_embeddings(rows[0]["id"], embed_model):
                state.skipped_unchanged += 1
                return
        sections = extract(path, int(limits.max_file_mb * 1e6))
        chunks = chunk_sections(sections, limits.chunk_size, limits.chunk_overlap)
        if len(chunks) > limits.max_chunks_per_file:
            raise DocumentError(f"{path.name}: {len(chunks)} passages is over the limit of "
                                f"{limits.max_chunks_per_file} per file (change it in settings).")
        vectors: list[list[float]] = []
        import numpy as np  # only when indexing: keeps numpy out of the app's start-up

        if embedder is not None:
            for start in range(0, len(chunks), EMBED_BATCH):
                if state.cancelled:
                    return
                vectors.extend(embedder([c.text for c in chunks[start:start + EMBED_BATCH]]))
        with self.db.lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM documents WHERE collection_id = ? AND path = ?",
                             (collection_id, str(path)))
                cur = conn.execute(
                    "INSERT INTO documents(collection_id, path, kind, content_hash, size, status,"
                    " chunk_count, indexed_at) VALUES (?, ?, ?, ?, ?, 'indexed', ?, ?)",
                    (collection_id, str(path), kind_of(path), digest, path.stat().st_size,
                     len(chunks), time.time()))
                document_id = cur.lastrowid
                for order, chunk in enumerate(chunks):
                    cur = conn.execute(
                        "INSERT INTO chunks(document_id, ord, text, page, page_end, line_start,"
                        " line_end, heading) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (document_id, order, chunk.text, chunk.page, chunk.page_end,
                         chunk.line_start, chunk.line_end, chunk.heading))
                    if vectors:
                        vector = np.asarray(vectors[order], dtype=np.float32)
                        vector /= max(float(np.linalg.norm(vector)), 1e-12)
                        conn.execute("INSERT INTO embeddings VALUES (?, ?, ?)",
                                     (cur.lastrowid, embed_model,
                                      vector.astype(np.float16).tobytes()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        state.chunks_done += len(chunks)

    def _has_embeddings(self, document_id: int, model: str | None) -> bool:
        rows = self.db.query(
            "SELECT COUNT(*) AS n, SUM(e.model = ?) AS m FROM chunks c LEFT JOIN embeddings e "
            "ON e.chunk_id = c.id WHERE c.document_id = ?", (model, document_id))
        return bool(rows) and rows[0]["n"] == (rows[0]["m"] or 0)
