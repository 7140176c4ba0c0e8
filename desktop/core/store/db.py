"""Opening the SQLite file: pragmas for durability, and the user_version upgrade loop."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from desktop.core.errors import StoreError
from desktop.core.store import migrations


class Database:
    """One connection, owned here and serialized by a lock: the single writer of DESIGN section 2.

    WAL lets readers in other processes (a CLI beside the GUI) see committed chats, and
    synchronous=FULL makes each committed message survive power loss, not just a crash.
    """

    def __init__(self, path: Path, *, upgrade_to: int = migrations.LATEST) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self.conn.row_factory = sqlite3.Row
            self._set_wal()
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Could not open the chat database {self.path}: {exc}. "
                "The file was not changed; keep a copy before trying to repair it."
            ) from exc
        self.upgrade(upgrade_to)

    def _set_wal(self) -> None:
        """Switch to WAL. Switching a file another process has open can answer "database is
        locked" at once, without waiting for the busy timeout (two Hearth processes opening
        an old data dir together): wait for the other process, boundedly, then report."""
        for attempt in range(400):
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 399:
                    raise
                time.sleep(0.05)

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def upgrade(self, target: int = migrations.LATEST) -> None:
        if self.version > migrations.LATEST:
            raise StoreError(
                f"The chat database {self.path} was written by a newer Hearth "
                f"(schema {self.version}, this version knows {migrations.LATEST}). "
                "Update Hearth; your chats have not been touched."
            )
        with self.lock:
            # Steps at or below the version read here are done; the rest are re-checked
            # inside their transaction (another process may be upgrading right now).
            for version in range(self.version + 1, target + 1):
                self._run_step(version)

    def _run_step(self, version: int) -> None:
        """Run one step and its version bump in one exclusive transaction, or nothing.

        The version is read inside the transaction: two processes opening a new or old data
        dir at once both see it un-upgraded, but the second waits for the first's lock and
        then finds the step done, instead of failing on "table already exists"."""
        step = migrations.STEPS[version - 1]
        try:
            self.conn.execute("BEGIN EXCLUSIVE")
            try:
                if self.version >= version:
                    self.conn.execute("COMMIT")
                    return
                if callable(step):
                    step(self.conn)
                else:
                    for statement in migrations.statements(step):
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version}")
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"Could not upgrade the chat database to schema {version}: {exc}. "
                "Nothing was changed.", details=repr(exc)
            ) from exc

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        with self.lock:
            try:
                return self.conn.execute(sql, params)
            except sqlite3.OperationalError as exc:
                raise self._storage_error(exc) from exc

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise self._storage_error(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together or not at all (a new chat and its first message; a
        message and its conversation's bookkeeping). Nested uses join the outer one."""
        with self.lock:
            if self.conn.in_transaction:
                yield
                return
            self.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _storage_error(self, exc: sqlite3.OperationalError) -> Exception:
        """The storage failures a user can act on, in words; others stay as they are."""
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text:
            return StoreError("The chat database is read-only, so Hearth cannot save anything: "
                              "make the data folder and its hearth.sqlite3 writable, or pass "
                              "--data-dir. Your chats so far are intact.")
        if "full" in text:
            return StoreError("The disk is full, so Hearth could not save to its chat "
                              "database: free some space and try again. Everything saved "
                              "before is intact.")
        return exc

    def close(self) -> None:
        with self.lock:
            self.conn.close()
