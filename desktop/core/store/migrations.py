"""Numbered schema steps. Step N upgrades a database at user_version N-1 to N.

Never edit a step that has shipped: add a new one. tests/core/test_upgrades.py holds the
SHA-256 of every shipped step (it fails when one changes) and upgrades a database written by
each shipped version's own code (tests/fixtures/schemas/) to today's schema.

A step is an SQL script, or a function of the connection for a step that must look before
it acts (SQLite has no ADD COLUMN IF NOT EXISTS). The runner in db.py runs each step inside
one exclusive transaction together with its version bump.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

V1_CHATS = """
        CREATE TABLE conversations (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            title         TEXT NOT NULL DEFAULT '',
            created_at    REAL NOT NULL,
            updated_at    REAL NOT NULL,
            model_path    TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            settings_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE messages (
            id                INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id   INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role              TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content           TEXT NOT NULL DEFAULT '',
            state             TEXT NOT NULL DEFAULT 'done'
                              CHECK (state IN ('streaming', 'done', 'stopped', 'failed', 'interrupted')),
            created_at        REAL NOT NULL,
            finished_at       REAL,
            prompt_tokens     INTEGER,
            cached_tokens     INTEGER,
            completion_tokens INTEGER,
            ttft_s            REAL,
            tokens_per_s      REAL,
            stop_reason       TEXT,
            error             TEXT
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX conversations_by_update ON conversations(updated_at DESC);
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
"""

# The library of registered GGUF files, and per-model defaults (context, GPU layers...).
V2_MODEL_LIBRARY = """
        CREATE TABLE models (
            id            INTEGER PRIMARY KEY,
            path          TEXT NOT NULL UNIQUE,
            name          TEXT NOT NULL,
            source        TEXT NOT NULL DEFAULT 'user',
            added_at      REAL NOT NULL,
            last_used_at  REAL,
            metadata_json TEXT NOT NULL DEFAULT '{}',
            settings_json TEXT NOT NULL DEFAULT '{}'
        );
"""

# Private documents: collections of files, their chunks (with locations), a full-text index
# over chunk text, and embeddings (normalized float16). A chat's own dropped files live in a
# hidden collection tied to the conversation. A user turn keeps the excerpts it was sent
# with (`context`), so re-rendering the conversation never changes the KV-cache prefix.
V3_DOCUMENTS = """
        CREATE TABLE collections (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            name            TEXT NOT NULL UNIQUE,
            conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
            watch           INTEGER NOT NULL DEFAULT 0,
            created_at      REAL NOT NULL
        );
        CREATE TABLE collection_paths (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path          TEXT NOT NULL,
            PRIMARY KEY (collection_id, path)
        );
        CREATE TABLE documents (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path          TEXT NOT NULL,
            kind          TEXT,
            content_hash  TEXT,
            size          INTEGER,
            status        TEXT NOT NULL CHECK (status IN ('indexed', 'failed', 'skipped')),
            error         TEXT,
            chunk_count   INTEGER NOT NULL DEFAULT 0,
            indexed_at    REAL NOT NULL,
            UNIQUE (collection_id, path)
        );
        CREATE TABLE chunks (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ord         INTEGER NOT NULL,
            text        TEXT NOT NULL,
            page        INTEGER,
            page_end    INTEGER,
            line_start  INTEGER,
            line_end    INTEGER,
            heading     TEXT
        );
        CREATE INDEX chunks_by_document ON chunks(document_id, ord);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, content='chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TABLE embeddings (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            model    TEXT NOT NULL,
            vector   BLOB NOT NULL
        );
        CREATE TABLE conversation_collections (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            collection_id   INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            PRIMARY KEY (conversation_id, collection_id)
        );
        ALTER TABLE messages ADD COLUMN context TEXT;
        ALTER TABLE messages ADD COLUMN sources_json TEXT;
        -- the process writing a streaming reply: start-up leaves a live writer's reply alone
        ALTER TABLE messages ADD COLUMN writer_pid INTEGER;
"""



def v4_repair_writer_pid(conn: sqlite3.Connection) -> None:
    """Step 3 shipped twice: first without `writer_pid` (commit e10efba), then a later commit
    added the column inside the already-shipped step. Databases written in between are at
    schema 3 without the column, and every query of today's code failed on them (users
    locked out of intact chats). Add it where it is missing; a no-op elsewhere."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    if "writer_pid" not in columns:
        conn.execute("ALTER TABLE messages ADD COLUMN writer_pid INTEGER")


# Message versions (regenerate and edit keep the earlier answers, shown as < 2/3 >): the
# messages of a conversation form a tree through `parent_id` (the message before this one on
# its branch; NULL for the first), and `current_leaf_id` is the last message of the branch on
# screen. Existing chats are one branch: each message's parent is the one before it.
V5_MESSAGE_VERSIONS = """
        ALTER TABLE messages ADD COLUMN parent_id INTEGER;
        ALTER TABLE conversations ADD COLUMN current_leaf_id INTEGER;
        UPDATE messages SET parent_id = (
            SELECT MAX(p.id) FROM messages AS p
            WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id
        );
        UPDATE conversations SET current_leaf_id = (
            SELECT MAX(m.id) FROM messages AS m WHERE m.conversation_id = conversations.id
        );
        CREATE INDEX messages_by_parent ON messages(parent_id);
"""

# Reasoning models: the thinking is stored apart from the answer (never re-sent to the model
# unless its template asks), with how long the model thought.
V6_REASONING = """
        ALTER TABLE messages ADD COLUMN reasoning TEXT;
        ALTER TABLE messages ADD COLUMN reasoning_s REAL;
"""

# Vision models: the images a message was sent with, as a JSON list of SHA-256 hashes of files
# in <data dir>/images (content-addressed: the same picture is stored once).
V7_IMAGES = """
        ALTER TABLE messages ADD COLUMN images_json TEXT;
"""

# Speculative decoding: what drafting did for a reply, as JSON {"drafted": tokens guessed,
# "accepted": guesses the model confirmed, "speedup": estimated factor over one token per
# decode}; NULL where drafting was off (or the reply predates it).
V8_DRAFTING = """
        ALTER TABLE messages ADD COLUMN spec_json TEXT;
"""

Step = str | Callable[[sqlite3.Connection], None]
STEPS: list[Step] = [V1_CHATS, V2_MODEL_LIBRARY, V3_DOCUMENTS, v4_repair_writer_pid,
                     V5_MESSAGE_VERSIONS, V6_REASONING, V7_IMAGES, V8_DRAFTING]
LATEST = len(STEPS)


def statements(script: str) -> list[str]:
    """Split an SQL script into statements (trigger bodies hold semicolons of their own), so
    a step can run inside a transaction that also reads the schema version first."""
    out: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement in a schema step: {buffer.strip()[:80]}")
    return out
