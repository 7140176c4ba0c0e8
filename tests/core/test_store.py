from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from desktop.core.errors import NotFound, StoreError
from desktop.core.store import migrations
from desktop.core.store.chats import ChatStore, title_from
from desktop.core.store.db import Database


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    return ChatStore(Database(tmp_path / "chats.sqlite3"))


def test_pragmas_are_durable(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.sqlite3")
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.version == migrations.LATEST


def test_conversation_and_messages_round_trip(store: ChatStore) -> None:
    conv = store.create_conversation("First", system_prompt="Be brief.", settings={"seed": 3})
    user = store.add_message(conv.id, "user", "Hello")
    reply = store.add_message(conv.id, "assistant", "", state="streaming")
    store.set_content(reply.id, "Hi th")
    done = store.finish_message(reply.id, "done", "Hi there", prompt_tokens=10, cached_tokens=4,
                                completion_tokens=3, ttft_s=0.1, tokens_per_s=50.0,
                                stop_reason="stop")
    messages = store.messages(conv.id)
    assert [m.id for m in messages] == [user.id, reply.id]
    assert done.content == "Hi there" and done.state == "done" and done.cached_tokens == 4
    loaded = store.conversation(conv.id)
    assert loaded.system_prompt == "Be brief." and loaded.settings == {"seed": 3}


def test_conversations_newest_first_and_delete_cascades(store: ChatStore) -> None:
    a = store.create_conversation("a")
    b = store.create_conversation("b")
    store.add_message(a.id, "user", "bump a")  # a becomes the most recent
    assert [c.id for c in store.conversations()] == [a.id, b.id]
    store.delete_conversation(a.id)
    with pytest.raises(NotFound):
        store.conversation(a.id)
    rows = store.db.query("SELECT COUNT(*) AS n FROM messages WHERE conversation_id = ?", (a.id,))
    assert rows[0]["n"] == 0


def test_search_titles_and_message_text(store: ChatStore) -> None:
    a = store.create_conversation("Holiday plans")
    b = store.create_conversation("Taxes")
    store.add_message(b.id, "user", "How do I deduct a home office?")
    reply = store.add_message(b.id, "assistant", "", state="streaming")
    store.set_content(reply.id, "You can deduct photosynthesis equipment")  # FTS follows updates
    assert [c.id for c in store.search("holiday")] == [a.id]
    assert [c.id for c in store.search("office")] == [b.id]
    assert [c.id for c in store.search("photosynth")] == [b.id]
    # FTS syntax in user input is treated as text, not as a query language
    assert store.search('"unbalanced AND (') == []


def test_streaming_rows_become_interrupted(store: ChatStore) -> None:
    conv = store.create_conversation("x")
    reply = store.add_message(conv.id, "assistant", "", state="streaming")
    store.set_content(reply.id, "partial")
    assert store.mark_interrupted() == 1
    message = store.message(reply.id)
    assert message.state == "interrupted" and message.content == "partial"


def test_a_live_writers_reply_is_not_marked_interrupted(store: ChatStore) -> None:
    import subprocess
    import sys

    conv = store.create_conversation("x")
    live = store.add_message(conv.id, "assistant", "", state="streaming")
    dead = store.add_message(conv.id, "assistant", "", state="streaming")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone_pid = subprocess.Popen([sys.executable, "-c", "pass"])  # one that has exited
        gone_pid.wait()
        store.db.execute("UPDATE messages SET writer_pid = ? WHERE id = ?", (other.pid, live.id))
        store.db.execute("UPDATE messages SET writer_pid = ? WHERE id = ?",
                         (gone_pid.pid, dead.id))
        assert store.mark_interrupted() == 1
        assert store.message(live.id).state == "streaming"  # another Hearth is still writing
        assert store.message(dead.id).state == "interrupted"
    finally:
        other.kill()
        other.wait()


def test_delete_messages_from(store: ChatStore) -> None:
    conv = store.create_conversation("x")
    ids = [store.add_message(conv.id, r, t).id for r, t in
           [("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]]
    store.delete_messages_from(conv.id, ids[2])
    assert [m.content for m in store.messages(conv.id)] == ["1", "2"]


def test_title_from_first_message() -> None:
    assert title_from("  hello\n world ") == "hello world"
    long = "word " * 40
    title = title_from(long)
    assert title.endswith("…") and len(title) <= 61
    assert title_from("") == "New chat"


def test_bad_state_rejected(store: ChatStore) -> None:
    conv = store.create_conversation("x")
    msg = store.add_message(conv.id, "user", "x")
    with pytest.raises(ValueError):
        store.finish_message(msg.id, "exploded", "x")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_message(conv.id, "robot", "x")


def test_unreadable_database_gives_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        Database(bad)


def test_damaged_or_hand_edited_settings_never_stop_the_app(tmp_path: Path) -> None:
    import json

    from desktop.core.settings import SAMPLING_DEFAULTS, Settings

    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert Settings(path).get("n_ctx") == 4096  # defaults, and the file is kept aside
    assert (tmp_path / "settings.json.bad").read_text() == "{not json"
    path.write_text(json.dumps({
        "sampling": 5, "n_ctx": "abc", "starter_registered": "yes", "n_gpu_layers": True,
        "last_model": "/m.gguf", "future_key": [1], "embed_model": None}))
    settings = Settings(path)
    assert settings.get("sampling") == SAMPLING_DEFAULTS and settings.get("n_ctx") == 4096
    assert settings.get("starter_registered") is False and settings.get("n_gpu_layers") is None
    assert settings.get("last_model") == "/m.gguf" and settings.get("future_key") == [1]
    path.write_text(json.dumps({"sampling": {"temperature": "hot", "top_k": 7, "seed": 3}}))
    sampling = Settings(path).get("sampling")
    assert sampling["temperature"] == SAMPLING_DEFAULTS["temperature"]
    assert sampling["top_k"] == 7 and sampling["seed"] == 3
    path.write_text("[1, 2]")
    assert Settings(path).get("n_ctx") == 4096
