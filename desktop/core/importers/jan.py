"""Jan: one folder per thread in its data folder's `threads/`, each with `thread.json`
(`{"id", "title", "created", "updated", "assistants": [{"model": {"id"}}]}`) and
`messages.jsonl` (one message a line: `{"id", "role", "content": [{"type": "text", "text":
{"value"}}], "created_at", "status"}`). Data folder: ~/jan (older versions), or
~/.local/share/Jan/data, ~/Library/Application Support/Jan/data, %APPDATA%\\Jan\\data.
Sources: docs/importers.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from desktop.core.importers.model import (
    ITEM_ERRORS,
    MAX_JSON_BYTES,
    Found,
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Problem,
    as_text,
    epoch_seconds,
    item_problem,
    read_json,
    shown,
    text_of,
)


def thread_folders(path: Path) -> list[Path]:
    """Thread folders under a Jan data folder, its `threads/` folder or one thread folder."""
    if path.is_file():
        path = path.parent  # thread.json or messages.jsonl: its thread
    if (path / "thread.json").is_file() or (path / "messages.jsonl").is_file():
        return [path]
    for threads in (path / "threads", path / "data" / "threads", path):
        if threads.is_dir():
            found = sorted(p for p in threads.iterdir()
                           if p.is_dir() and ((p / "thread.json").is_file()
                                              or (p / "messages.jsonl").is_file()))
            if found:
                return found
    return []


def scan(path: Path) -> Found:
    found = Found("jan", shown(path))
    for folder in thread_folders(path):
        try:
            found.conversations.append(read_thread(folder, found.problems))
        except ITEM_ERRORS as exc:
            found.problems.append(item_problem(shown(folder), exc))
    return found


def read_thread(folder: Path, problems: list[Problem]) -> ImportedConversation:
    meta_file = folder / "thread.json"
    meta: dict[str, Any] = {}
    if meta_file.is_file():
        try:
            data = read_json(meta_file)
        except ImportFormatError as exc:
            raise ImportFormatError(f"its thread.json could not be read: {exc.message}") from exc
        if not isinstance(data, dict):
            raise ImportFormatError("its thread.json is not a Jan thread.")
        meta = data
    title = meta.get("title") or meta.get("summary") or ""
    source_id = as_text(meta.get("id")) or folder.name
    model = ""
    assistants = meta.get("assistants")
    if isinstance(assistants, list) and assistants and isinstance(assistants[0], dict):
        info = assistants[0].get("model")
        model = str(info.get("id") or "") if isinstance(info, dict) else ""
    created = epoch_seconds(meta.get("created"))
    result = ImportedConversation(
        app="jan", source_id=source_id, title=str(title).strip(), created_at=created,
        updated_at=epoch_seconds(meta.get("updated")), where=shown(folder), model=model)
    lines = folder / "messages.jsonl"
    rows: list[tuple[float, int, ImportedMessage]] = []
    if lines.is_file():
        if lines.stat().st_size > MAX_JSON_BYTES:
            raise ImportFormatError("its messages.jsonl is too large to read.")
        raw = lines.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(f"{shown(lines)} line {number}",
                                        f"this message is not valid JSON ({exc.msg}); the "
                                        "thread's other messages were read."))
                continue
            message = _message(item)
            if message is not None:
                rows.append((message.created_at or 0.0, number, message))
    # Jan appends in order, but sorting by time (then line) also fixes files written newest
    # first, as its early spec showed.
    rows.sort(key=lambda row: (row[0], row[1]))
    for _, _, message in rows:
        if message.role == "system" and not result.messages and not result.system_prompt:
            result.system_prompt = message.content
        else:
            result.messages.append(message)
    if result.messages:
        result.created_at = result.created_at or result.messages[0].created_at
        result.updated_at = result.updated_at or result.messages[-1].created_at
    return result


def _message(item: Any) -> ImportedMessage | None:
    if not isinstance(item, dict) or item.get("role") not in ("user", "assistant", "system"):
        return None
    content = item.get("content")
    if isinstance(content, list):
        text = "\n".join(text_of(part) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    else:
        text = text_of(content)
    if not text.strip():
        return None
    return ImportedMessage(item["role"], text, epoch_seconds(item.get("created_at")))
