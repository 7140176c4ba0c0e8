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
    store = ChatStore(upgraded)
    messages = store.messages(1)
    assert [m.content for m in messages] == ["remember the milk", "half a rep"]
    assert store.conversation(1).title == "Old"
    assert [c.id for c in store.search("milk")] == [1]  # the FTS index came along
    upgraded.execute("INSERT INTO models(path, name, added_at) VALUES ('/m.gguf', 'm', 0)")


def test_step_3_upgrades_a_v2_database(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    old = Database(path, upgrade_to=2)
    _fill_v1(old)
    old.execute("INSERT INTO models(path, name, added_at) VALUES ('/m.gguf', 'm', 0)")
    old.close()
    upgraded = Database(path, upgrade_to=3)
    store = ChatStore(upgraded)
    messages = store.messages(1)
    assert [m.content for m in messages] == ["remember the milk", "half a rep"]
    assert messages[0].context is None and messages[0].sources == []
    assert upgraded.query("SELECT name FROM models")[0]["name"] == "m"
    upgraded.execute("INSERT INTO collections(name, created_at) VALUES ('c', 0)")
    store.set_context(messages[0].id, "excerpts", [{"n": 1, "path": "/a.pdf"}])
    assert store.message(messages[0].id).sources == [{"n": 1, "path": "/a.pdf"}]


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
    assert len(ChatStore(db).messages(1)) == 2


def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    db = Database(path)
    db.execute(f"PRAGMA user_version={migrations.LATEST + 5}")
    db.close()
    with pytest.raises(StoreError, match="newer Hearth"):
        Database(path)
