"""Every schema step upgrades a database written by the previous version without losing chats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from desktop.core.errors import StoreError
from desktop.core.store import migrations
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database


def _fill_v1(db: Database) -> None:
    now = time.time()
    db.execute("INSERT INTO conversations(id, title, created_at, updated_at) VALUES (1, 'Old', ?, ?)",
               (now, now))
    db.execute("INSERT INTO messages(conversation_id, role, content, state, created_at)"
               " VALUES (1, 'user', 'remember the milk', 'done', ?)", (now,))
    db.execute("INSERT INTO messages(conversation_id, role, content, state, created_at)"
               " VALUES (1, 'assistant', 'half a rep', 'streaming', ?)", (now,))


def _contents(db: Database) -> list[str]:
    return [r["content"] for r in db.query(
        "SELECT content FROM messages WHERE conversation_id = 1 ORDER BY id")]


def test_fresh_database_is_at_latest(tmp_path: Path) -> None:
    assert Database(tmp_path / "x.sqlite3").version == migrations.LATEST


def test_step_2_upgrades_a_v1_database(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    old = Database(path, upgrade_to=1)
    assert old.version == 1
    _fill_v1(old)
    old.close()

    upgraded = Database(path, upgrade_to=2)
    assert upgraded.version == 2
    # Today's ChatStore needs later steps' columns: an intermediate schema is read with SQL.
    assert _contents(upgraded) == ["remember the milk", "half a rep"]
    assert upgraded.query("SELECT title FROM conversations")[0]["title"] == "Old"
    assert [r[0] for r in upgraded.query(  # the FTS index came along
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'milk'")] == [1]
    upgraded.execute("INSERT INTO models(path, name, added_at) VALUES ('/m.gguf', 'm', 0)")


def test_step_3_upgrades_a_v2_database(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    old = Database(path, upgrade_to=2)
    _fill_v1(old)
    old.execute("INSERT INTO models(path, name, added_at) VALUES ('/m.gguf', 'm', 0)")
    old.close()
    upgraded = Database(path, upgrade_to=3)
    assert _contents(upgraded) == ["remember the milk", "half a rep"]
    assert upgraded.query("SELECT context, sources_json FROM messages WHERE id = 1")[0][:] == (
        None, None)
    assert upgraded.query("SELECT name FROM models")[0]["name"] == "m"
    upgraded.execute("INSERT INTO collections(name, created_at) VALUES ('c', 0)")
    upgraded.close()
    store = ChatStore(Database(path))  # and today's store reads it once fully upgraded
    store.set_context(1, "excerpts", [{"n": 1, "path": "/a.pdf"}])
    assert store.message(1).sources == [{"n": 1, "path": "/a.pdf"}]


def test_each_step_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.sqlite3"
    _fill_v1(Database(path, upgrade_to=1))
    broken = [*migrations.STEPS[:1], "CREATE TABLE half_done(x); SELECT no_such_function();",
              *migrations.STEPS[2:]]
    monkeypatch.setattr(migrations, "STEPS", broken)
    with pytest.raises(StoreError, match="Nothing was changed"):
        Database(path, upgrade_to=2)
    monkeypatch.undo()
    db = Database(path, upgrade_to=1)
    assert db.version == 1
    assert not db.query("SELECT name FROM sqlite_master WHERE name = 'half_done'")
    assert len(_contents(db)) == 2


def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    db = Database(path)
    db.execute(f"PRAGMA user_version={migrations.LATEST + 5}")
    db.close()
    with pytest.raises(StoreError, match="newer Hearth"):
        Database(path)
