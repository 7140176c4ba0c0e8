"""Numbered schema steps. Step N upgrades a database at user_version N-1 to N.

Never edit a step that has shipped: add a new one. Each step has a test that upgrades a
database written by the previous version and checks that every chat survived.
"""

from __future__ import annotations

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

# SQL scripts; the runner wraps each in BEGIN EXCLUSIVE ... COMMIT with its version bump.
STEPS: list[str] = [V1_CHATS, V2_MODEL_LIBRARY]
LATEST = len(STEPS)
