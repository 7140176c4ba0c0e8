"""Open WebUI: Settings → Chats → "Export chats" (or a chat's Download → Export chat (.json))
writes a JSON list of chats as its database holds them (backend/open_webui/models/chats.py,
ChatModel): `{"id", "title", "created_at", "updated_at", "chat": {"title", "history":
{"messages": {id: {"id", "parentId", "childrenIds", "role", "content", "timestamp"}},
"currentId"}, "messages": [...]}}`. The history is a tree (edits and regenerations); the
branch ending at `currentId` is what the user saw and is imported; old exports only have the
flat `chat.messages` list. Sources: docs/importers.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from desktop.core.importers.model import (
    ITEM_ERRORS,
    Found,
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Problem,
    as_dict,
    epoch_seconds,
    item_problem,
    read_json,
    shown,
    text_of,
)


def looks_like(data: Any) -> bool:
    items = data if isinstance(data, list) else [data]
    return bool(items) and any(isinstance(c, dict) and isinstance(c.get("chat"), dict)
                               for c in items[:5])


def scan(path: Path) -> Found:
    found = Found("openwebui", shown(path))
    try:
        data = read_json(path)
    except ImportFormatError as exc:
        found.problems.append(Problem(shown(path), exc.message))
        return found
    if not looks_like(data):
        found.problems.append(Problem(shown(path), "it is not an Open WebUI chat export (no "
                                      "item has a chat)."))
        return found
    for n, item in enumerate(data if isinstance(data, list) else [data], start=1):
        where = f"{shown(path)} (chat {n})"
        try:
            found.conversations.append(conversation(item, where))
        except ITEM_ERRORS as exc:
            found.problems.append(item_problem(where, exc))
    return found


def conversation(item: Any, where: str) -> ImportedConversation:
    if not isinstance(item, dict) or not isinstance(item.get("chat"), dict):
        raise ImportFormatError("it has no chat.")
    chat: dict[str, Any] = item["chat"]
    title = item.get("title") or chat.get("title") or ""
    created = epoch_seconds(item.get("created_at")) or epoch_seconds(chat.get("timestamp"))
    source_id = item.get("id") or chat.get("id")
    if not isinstance(source_id, str) or not source_id:
        source_id = "sha1:" + hashlib.sha1(f"{title}\0{created}".encode()).hexdigest()
    models = chat.get("models")
    result = ImportedConversation(
        app="openwebui", source_id=source_id, title=str(title).strip(), created_at=created,
        updated_at=epoch_seconds(item.get("updated_at")) or created, where=where,
        model=str(models[0]) if isinstance(models, list) and models else "")
    system = chat.get("system") or as_dict(chat.get("params")).get("system") or ""
    if isinstance(system, str):
        result.system_prompt = system
    for message in _branch(chat):
        role = message.get("role")
        text = text_of(message.get("content"))
        if role not in ("user", "assistant", "system") or not text.strip():
            continue
        when = epoch_seconds(message.get("timestamp"))
        if role == "system" and not result.messages and not result.system_prompt:
            result.system_prompt = text
            continue
        result.messages.append(ImportedMessage(role, text, when or created))
    return result


def _branch(chat: dict[str, Any]) -> list[dict[str, Any]]:
    history = chat.get("history")
    if isinstance(history, dict) and isinstance(history.get("messages"), dict):
        messages: dict[str, Any] = history["messages"]
        current = history.get("currentId")
        if not isinstance(current, str) or current not in messages:
            current = max(messages, key=lambda k: epoch_seconds(
                (messages[k] or {}).get("timestamp") if isinstance(messages[k], dict) else 0)
                or 0, default=None)
        path: list[dict[str, Any]] = []
        seen: set[str] = set()
        while isinstance(current, str) and current in messages and current not in seen:
            seen.add(current)  # a parent loop in a damaged file ends the walk
            node = messages[current]
            if not isinstance(node, dict):
                break
            path.append(node)
            current = node.get("parentId")
        path.reverse()
        if path:
            return path
    flat = chat.get("messages")
    return [m for m in flat if isinstance(m, dict)] if isinstance(flat, list) else []
