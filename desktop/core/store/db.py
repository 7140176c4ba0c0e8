"""Opening the SQLite file: pragmas for durability, and the user_version upgrade loop."""

from __future__ import annotations

import sqlite3
import threading
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
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Could not open the chat database {self.path}: {exc}. "
                "The file was not changed; keep a copy before trying to repair it."
            ) from exc
        self.upgrade(upgrade_to)

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def upgrade(self, target: int = migrations.LATEST) -> None:
        current = self.version
        if current > migrations.LATEST:
            raise StoreError(
                f"The chat database {self.path} was written by a newer Hearth "
                f"(schema {current}, this version knows {migrations.LATEST}). "
                "Update Hearth; your chats have not been touched."
            )
        with self.lock:
            for version in range(current + 1, target + 1):
                # Each step and its version bump commit together or not at all.
                try:
                    self.conn.executescript(
                        f"BEGIN EXCLUSIVE;\n{migrations.STEPS[version - 1]}\n"
                        f"PRAGMA user_version={version};\nCOMMIT;"
                    )
                except sqlite3.Error as exc:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise StoreError(
                        f"Could not upgrade the chat database to schema {version}: {exc}. "
                        "Nothing was changed."
                    ) from exc

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()
