"""Collections, incremental and resumable indexing, and per-file errors.

Each file is one transaction: its old chunks go, its new chunks, FTS rows and embeddings come,
together. A kill loses at most the file in progress, and re-adding skips files whose content
hash is unchanged, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.documents.chunk import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_sections
from desktop.core.documents.extract import (
    DocumentError,
    SkippedFile,
    extract,
    kind_of,
    read_file,
)
from desktop.core.documents.paths import from_db, shown, shown_name, to_db
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


@dataclass
class Walked:
    """What a walk found: the files to index, and each folder or link it could not enter."""

    files: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)  # folders whose files are unknown


def walk(paths: Iterable[Path]) -> Walked:
    """Files under the given files/folders, sorted; hidden and tool folders are skipped.

    A sub-folder that cannot be listed is reported with its reason and the walk goes on.
    Links to folders are not followed (a link can lead back up the tree, or out to the whole
    disk): each is reported, a loop as a loop. Links to files are kept; the indexer checks
    what they lead to.
    """
    walked = Walked()

    def unreadable(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else None
        if folder is not None:
            walked.unreadable.append(folder)
        where = os.fspath(exc.filename or "?")
        walked.errors.append((shown(where), f"{shown_name(where)}: the folder cannot be read "
                              f"({shown(exc.strerror or str(exc))}), so its files were "
                              "skipped."))

    for path in paths:
        path = Path(path).expanduser()
        if not path.is_dir():
            walked.files.append(path)
            continue
        for root, dirs, files in os.walk(path, onerror=unreadable):
            kept = []
            for name in sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")):
                folder = Path(root) / name
                if folder.is_symlink():
                    walked.errors.append((shown(folder), f"{shown_name(folder)}: "
                                          + _linked_folder(folder)))
                else:
                    kept.append(name)
            dirs[:] = kept
            walked.files.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return walked


def _linked_folder(folder: Path) -> str:
    try:
        target = folder.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11 reports a loop this way
        return "skipped, it is a symbolic link loop (the link never reaches a folder)."
    if target == folder.parent.resolve() or target in folder.parent.resolve().parents:
        return ("skipped, it is a symbolic link loop (it leads back to a folder that holds "
                "it).")
    return (f"skipped, it is a link to another folder ({shown(target)}): add that folder "
            "itself to index it.")


class DocumentIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- collections -----------------------------------------------------------------
    def create_collection(self, name: str, conversation_id: int | None = None) -> int:
        name = shown(name.strip())  # a name typed in a non-UTF-8 terminal: \xNN, not a crash
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
        name = shown(name)
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
    def add_paths(self, collection_id: int, paths: Sequence[str | Path], *,
                  embedder: Embedder | None = None, embed_model: str | None = None,
                  limits: IndexLimits | None = None, state: IndexState | None = None,
                  remember: bool = True) -> IndexState:
        """Index files and folders into a collection; only new or changed files are read.

        Every problem is one entry in `state.errors` (a path as people read it, and one
        sentence) and the batch goes on: nothing here raises for a bad file or folder.
        """
        limits = limits or IndexLimits()
        state = state or IndexState()
        roots = [Path(os.path.abspath(Path(p).expanduser())) for p in paths]
        # lexists: a link that leads nowhere or in a loop is there, and gets its own reason.
        missing = [r for r in roots if not os.path.lexists(r)]
        for root in missing:
            state.errors.append((shown(root), "no such file or folder."))
        if remember:
            for root in roots:
                if root not in missing:  # a mistyped path is not kept and re-read forever
                    self.db.execute("INSERT OR IGNORE INTO collection_paths VALUES (?, ?)",
                                    (collection_id, to_db(root)))
        walked = walk(r for r in roots if r not in missing)
        files = walked.files
        state.errors.extend(walked.errors)
        state.files_total = len(files)
        state.removed += self._forget_deleted(collection_id, roots, {to_db(f) for f in files},
                                              walked.unreadable)
        for path in files:
            if state.cancelled:
                break
            state.current = shown(path)
            unchanged = state.skipped_unchanged
            try:
                self._index_file(collection_id, path, embedder, embed_model, limits, state)
                state.indexed += state.skipped_unchanged == unchanged
            except DocumentError as exc:
                self._record(collection_id, path,
                             "skipped" if isinstance(exc, SkippedFile) else "failed", exc.message)
                state.errors.append((shown(path), exc.message))
            except HearthError as exc:  # the embedding model failed: keep the file's text
                state.errors.append((shown(path), exc.message))
            state.files_done += 1
        state.current = ""
        return state

    def reindex(self, collection_id: int, **options: Any) -> IndexState:
        return self.add_paths(collection_id, [from_db(p) for p in self.paths(collection_id)],
                              remember=False, **options)

    def remove_paths(self, collection_id: int, paths: Sequence[str | Path]) -> int:
        """Forget files or folders; a path may be given as on disk or as stored (to_db)."""
        removed = 0
        for path in paths:
            absolute = to_db(os.path.abspath(Path(path).expanduser()))
            self.db.execute("DELETE FROM collection_paths WHERE collection_id = ? AND path = ?",
                            (collection_id, absolute))
            cur = self.db.execute(
                "DELETE FROM documents WHERE collection_id = ? AND (path = ? OR path LIKE ?)",
                (collection_id, absolute, absolute.rstrip(os.sep) + os.sep + "%"))
            removed += cur.rowcount
        return removed

    def _forget_deleted(self, collection_id: int, roots: list[Path], present: set[str],
                        unreadable: list[Path]) -> int:
        """Drop rows of files that are gone; files in a folder that could not be listed are
        kept (they may well still be there: the folder is only unreadable right now)."""
        removed = 0
        stored_roots = [Path(to_db(r)) for r in roots]
        hidden = [Path(to_db(folder)) for folder in unreadable]
        for row in self.documents(collection_id):
            path = Path(row["path"])
            under = any(path == r or r in path.parents for r in stored_roots)
            if any(h in path.parents for h in hidden):
                continue
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
            (collection_id, to_db(path), kind_of(path), status, error, time.time()))
        if status != "indexed":
            self.db.execute("DELETE FROM chunks WHERE document_id = (SELECT id FROM documents "
                            "WHERE collection_id = ? AND path = ?)", (collection_id, to_db(path)))

    def _index_file(self, collection_id: int, path: Path, embedder: Embedder | None,
                    embed_model: str | None, limits: IndexLimits, state: IndexState) -> None:
        max_bytes = int(limits.max_file_mb * 1e6)
        if kind_of(path) is None:
            extract(path, 0)  # raises the "not supported" DocumentError, reading nothing
        # One bounded read of a regular file (read_file refuses pipes, devices and loops):
        # the bytes hashed are the bytes indexed, and nothing is read twice.
        data = read_file(path, max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        stored = to_db(path)
        rows = self.db.query("SELECT id, content_hash, status FROM documents WHERE "
                             "collection_id = ? AND path = ?", (collection_id, stored))
        if rows and rows[0]["content_hash"] == digest and rows[0]["status"] == "indexed":
            if embedder is None or self._has_embeddings(rows[0]["id"], embed_model):
                state.skipped_unchanged += 1
                return
        sections = extract(path, max_bytes, data)
        chunks = chunk_sections(sections, limits.chunk_size, limits.chunk_overlap)
        if len(chunks) > limits.max_chunks_per_file:
            raise DocumentError(f"{shown(path.name)}: {len(chunks)} passages is over the limit "
                                f"of {limits.max_chunks_per_file} per file (change it in "
                                "settings).")
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
                             (collection_id, stored))
                cur = conn.execute(
                    "INSERT INTO documents(collection_id, path, kind, content_hash, size, status,"
                    " chunk_count, indexed_at) VALUES (?, ?, ?, ?, ?, 'indexed', ?, ?)",
                    (collection_id, stored, kind_of(path), digest, len(data),
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
