"""Conversations and messages: the chat history repository over the Database."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from desktop.core.errors import NotFound
from desktop.core.store.db import Database

MESSAGE_STATES = ("streaming", "done", "stopped", "failed", "interrupted")


@dataclass
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    model_path: str | None
    system_prompt: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    state: str
    created_at: float
    finished_at: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    stop_reason: str | None = None
    error: str | None = None
    context: str | None = None  # document excerpts this user turn was sent with
    sources_json: str | None = None
    writer_pid: int | None = None
    parent_id: int | None = None  # the message before this one on its branch (schema 5)
    reasoning: str | None = None  # a reasoning model's thinking, kept apart (schema 6)
    reasoning_s: float | None = None
    images_json: str | None = None  # SHA-256 hashes of the images sent with it (schema 7)
    # What speculative decoding did for this reply (schema 8): {"drafted", "accepted",
    # "speedup"} as JSON; None where drafting was off.
    spec_json: str | None = None
    # Not a column: the ids of this message's versions (its siblings: same parent), oldest
    # first, this one included. Filled by ChatStore.messages(); one id means no other version.
    versions: list[int] = field(default_factory=list)

    @property
    def version(self) -> int:
        """This message's place among its versions, from 1 (the ‹ 2/3 › of the window)."""
        return self.versions.index(self.id) + 1 if self.id in self.versions else 1

    @property
    def sources(self) -> list[dict[str, Any]]:
        return json.loads(self.sources_json) if self.sources_json else []

    @property
    def images(self) -> list[str]:
        """The images of this message: hashes of files in <data dir>/images (store/images.py)."""
        return list(json.loads(self.images_json)) if self.images_json else []

    @property
    def spec(self) -> dict[str, Any]:
        """The reply's drafting stats: drafted and accepted tokens, and the estimated speed-up
        (absent where the worker could not time a single decode); {} where drafting was off."""
        if not self.spec_json:
            return {}
        try:
            data = json.loads(self.spec_json)
        except ValueError:
            return {}  # a damaged value loses the stats line, never the chat
        return data if isinstance(data, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _conversation(row: Any) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model_path=row["model_path"],
        system_prompt=row["system_prompt"],
        settings=json.loads(row["settings_json"] or "{}"),
    )


def _message(row: Any) -> Message:
    return Message(**{key: row[key] for key in row.keys()})


def _branch(parents: dict[int, int | None], leaf: int | None) -> list[int]:
    """The ids from the root down to `leaf`, following parent links."""
    path: list[int] = []
    node = leaf
    while node is not None and node in parents and len(path) <= len(parents):
        path.append(node)  # the length bound stops a (corrupt) parent cycle
        node = parents[node]
    path.reverse()
    return path


def _children(parents: dict[int, int | None]) -> dict[int | None, list[int]]:
    """Each message's children (its next messages, one per version), oldest first."""
    children: dict[int | None, list[int]] = {}
    for message_id in sorted(parents):
        children.setdefault(parents[message_id], []).append(message_id)
    return children


def title_from(text: str, limit: int = 60) -> str:
    """A sidebar title from the first user message: first line, cut at a word boundary."""
    line = " ".join(text.strip().split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"


class ChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- conversations -------------------------------------------------------------
    def create_conversation(
        self,
        title: str = "",
        *,
        model_path: str | None = None,
        system_prompt: str = "",
        settings: dict[str, Any] | None = None,
    ) -> Conversation:
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO conversations(title, created_at, updated_at, model_path, system_prompt,"
            " settings_json) VALUES (?, ?, ?, ?, ?, ?)",
            (title, now, now, model_path, system_prompt, json.dumps(settings or {})),
        )
        assert cur.lastrowid is not None
        return self.conversation(cur.lastrowid)

    def conversation(self, conversation_id: int) -> Conversation:
        rows = self.db.query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not rows:
            raise NotFound(f"There is no conversation {conversation_id}.")
        return _conversation(rows[0])

    def conversations(self) -> list[Conversation]:
        rows = self.db.query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC")
        return [_conversation(r) for r in rows]

    def latest_conversation(self) -> Conversation | None:
        rows = self.db.query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1")
        return _conversation(rows[0]) if rows else None

    def update_conversation(self, conversation_id: int, **fields: Any) -> Conversation:
        allowed = {"title", "model_path", "system_prompt", "settings"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown conversation fields: {sorted(unknown)}")
        if "settings" in fields:
            fields["settings_json"] = json.dumps(fields.pop("settings"))
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            self.db.execute(
                f"UPDATE conversations SET {assignments} WHERE id = ?",
                (*fields.values(), conversation_id),
            )
        return self.conversation(conversation_id)

    def touch(self, conversation_id: int) -> None:
        self.db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conversation_id)
        )

    def delete_conversation(self, conversation_id: int) -> None:
        self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def search(self, text: str) -> list[Conversation]:
        """Conversations whose title or any message matches, newest first."""
        words = [w.replace('"', '""') for w in text.split() if w]
        if not words:
            return self.conversations()
        # Each word as a quoted prefix term: user input never becomes FTS syntax.
        match = " ".join(f'"{w}"*' for w in words)
        like = f"%{text.strip()}%"
        rows = self.db.query(
            """
            SELECT * FROM conversations WHERE title LIKE ? OR id IN (
                SELECT m.conversation_id FROM messages_fts f JOIN messages m ON m.id = f.rowid
                WHERE messages_fts MATCH ?)
            ORDER BY updated_at DESC, id DESC
            """,
            (like, match),
        )
        return [_conversation(r) for r in rows]

    # --- messages ------------------------------------------------------------------
    def add_message(
        self, conversation_id: int, role: str, content: str, state: str = "done"
    ) -> Message:
        now = time.time()
        with self.db.transaction():
            # A new message continues the branch on screen (schema 5's message tree): its
            # parent is the current leaf, and it becomes the leaf. Regenerate and edit move the
            # leaf back first (set_leaf), so the new message is a sibling: another version.
            cur = self.db.execute(
                "INSERT INTO messages(conversation_id, role, content, state, created_at,"
                " finished_at, writer_pid, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?,"
                " (SELECT current_leaf_id FROM conversations WHERE id = ?))",
                (conversation_id, role, content, state, now,
                 None if state == "streaming" else now,
                 os.getpid() if state == "streaming" else None, conversation_id),
            )
            self.db.execute(
                "UPDATE conversations SET updated_at = ?, current_leaf_id = ? WHERE id = ?",
                (now, cur.lastrowid, conversation_id),
            )
        assert cur.lastrowid is not None
        return self.message(cur.lastrowid)

    def message(self, message_id: int) -> Message:
        rows = self.db.query("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise NotFound(f"There is no message {message_id}.")
        message = _message(rows[0])
        siblings = self.db.query(
            "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (message.conversation_id, message.parent_id))
        message.versions = [r["id"] for r in siblings]
        return message

    def _tree(self, conversation_id: int) -> tuple[dict[int, int | None], int | None]:
        """Every message's parent in this conversation, and the leaf of the branch on screen."""
        with self.db.lock:
            rows = self.db.query("SELECT id, parent_id FROM messages WHERE conversation_id = ?",
                                 (conversation_id,))
            leaf = self.db.query("SELECT current_leaf_id FROM conversations WHERE id = ?",
                                 (conversation_id,))
        parents = {r["id"]: r["parent_id"] for r in rows}
        current = leaf[0]["current_leaf_id"] if leaf else None
        if current not in parents:
            # No leaf recorded (an empty chat) or a leaf that is gone: the newest message.
            current = max(parents) if parents else None
        return parents, current

    def branch_ids(self, conversation_id: int) -> list[int]:
        """The ids of the branch on screen, first message first."""
        return _branch(*self._tree(conversation_id))

    def messages(self, conversation_id: int) -> list[Message]:
        """The branch on screen (the active versions), first message first, each with the ids
        of its versions. Other versions stay stored; `select_version` brings one back."""
        parents, leaf = self._tree(conversation_id)
        path = _branch(parents, leaf)
        if not path:
            return []
        children = _children(parents)
        marks = ",".join("?" * len(path))
        rows = {r["id"]: r for r in self.db.query(
            f"SELECT * FROM messages WHERE id IN ({marks})", tuple(path))}
        out = []
        for message_id in path:
            message = _message(rows[message_id])
            message.versions = children.get(message.parent_id, [message_id])
            out.append(message)
        return out

    def all_messages(self, conversation_id: int) -> list[Message]:
        """Every stored message of a conversation, all versions, oldest first."""
        rows = self.db.query(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))
        return [_message(r) for r in rows]

    def set_leaf(self, conversation_id: int, message_id: int | None) -> None:
        """Make `message_id` the end of the branch on screen (None: before the first message),
        so the next add_message starts a new version after it."""
        self.db.execute("UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                        (message_id, conversation_id))

    def select_version(self, conversation_id: int, message_id: int) -> list[Message]:
        """Show version `message_id`: the branch through it, continued by its most recent
        descendant leaf (the last reply written under that version). Returns the new branch."""
        parents, _ = self._tree(conversation_id)
        if message_id not in parents:
            raise NotFound(f"There is no message {message_id} in conversation {conversation_id}.")
        children = _children(parents)
        leaves, stack = [], [message_id]
        while stack:
            node = stack.pop()
            below = children.get(node, [])
            if below:
                stack.extend(below)
            else:
                leaves.append(node)
        self.set_leaf(conversation_id, max(leaves))
        return self.messages(conversation_id)

    def set_context(self, message_id: int, context: str | None,
                    sources: list[dict[str, Any]]) -> None:
        self.db.execute("UPDATE messages SET context = ?, sources_json = ? WHERE id = ?",
                        (context, json.dumps(sources) if sources else None, message_id))

    def set_images(self, message_id: int, hashes: list[str]) -> None:
        self.db.execute("UPDATE messages SET images_json = ? WHERE id = ?",
                        (json.dumps(hashes) if hashes else None, message_id))

    def image_references(self, hashes: list[str]) -> set[str]:
        """Which of `hashes` some message still references (an image shared by two chats stays
        when one of them is deleted)."""
        wanted = set(hashes)
        rows = self.db.query("SELECT images_json FROM messages WHERE images_json IS NOT NULL")
        return {h for row in rows for h in json.loads(row["images_json"]) if h in wanted}

    def set_content(self, message_id: int, content: str, reasoning: str | None = None) -> None:
        """The periodic flush of a streaming reply (each call is one durable commit); a
        reasoning model's thinking so far is flushed with it."""
        if reasoning is None:
            self.db.execute("UPDATE messages SET content = ? WHERE id = ?", (content, message_id))
        else:
            self.db.execute("UPDATE messages SET content = ?, reasoning = ? WHERE id = ?",
                            (content, reasoning, message_id))

    def finish_message(self, message_id: int, state: str, content: str, **stats: Any) -> Message:
        if state not in MESSAGE_STATES:
            raise ValueError(f"bad message state {state!r}")
        allowed = {
            "prompt_tokens", "cached_tokens", "completion_tokens", "ttft_s",
            "tokens_per_s", "stop_reason", "error", "reasoning", "reasoning_s", "spec_json",
        }
        values = {k: v for k, v in stats.items() if k in allowed}
        assignments = "".join(f", {k} = ?" for k in values)
        self.db.execute(
            f"UPDATE messages SET state = ?, content = ?, finished_at = ?{assignments} WHERE id = ?",
            (state, content, time.time(), *values.values(), message_id),
        )
        return self.message(message_id)

    def resume_message(self, message_id: int) -> None:
        """A reply being continued is streaming again, written by this process."""
        self.db.execute("UPDATE messages SET state = 'streaming', finished_at = NULL, "
                        "writer_pid = ? WHERE id = ?", (os.getpid(), message_id))

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Drop a message and everything written after it on any branch below it; the branch
        on screen then ends at its parent."""
        with self.db.lock:
            parents, leaf = self._tree(conversation_id)
            if message_id not in parents:
                return
            children = _children(parents)
            doomed, stack = [], [message_id]
            while stack:
                node = stack.pop()
                doomed.append(node)
                stack.extend(children.get(node, []))
            marks = ",".join("?" * len(doomed))
            self.db.execute(f"DELETE FROM messages WHERE id IN ({marks})", tuple(doomed))
            if leaf in doomed:
                self.set_leaf(conversation_id, parents[message_id])

    def mark_interrupted(self) -> int:
        """At start-up: replies that were streaming when their writer died become `interrupted`.

        A reply still being written by another live Hearth process (the GUI while the CLI
        starts) is left alone.
        """
        import psutil

        rows = self.db.query("SELECT id, writer_pid FROM messages WHERE state = 'streaming'")
        dead = [r["id"] for r in rows
                if not r["writer_pid"] or r["writer_pid"] == os.getpid()
                or not psutil.pid_exists(r["writer_pid"])]
        for message_id in dead:
            self.db.execute("UPDATE messages SET state = 'interrupted', finished_at = ? "
                            "WHERE id = ?", (time.time(), message_id))
        return len(dead)
