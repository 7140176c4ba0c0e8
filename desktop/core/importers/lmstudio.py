"""LM Studio: one `<created ms>.conversation.json` per chat, in ~/.lmstudio/conversations
(older versions: ~/.cache/lm-studio/conversations), possibly in sub-folders.

`{"name", "createdAt" (ms), "systemPrompt", "messages": [{"versions": [...],
"currentlySelected": n}]}`; a version is `{"type": "singleStep", "role", "content": [{"type":
"text", "text"}]}` or, for replies, `{"type": "multiStep", "role": "assistant", "steps":
[{"type": "contentBlock", "content": [...]}, ...]}`. Each message keeps its regenerations as
versions; the one on screen (`currentlySelected`) is imported. Sources: docs/importers.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.core.importers.model import (
    ITEM_ERRORS,
    Found,
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    as_dict,
    epoch_seconds,
    item_problem,
    read_json,
    shown,
    text_of,
)

SUFFIX = ".conversation.json"


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("messages"), list) and (
        "createdAt" in data or any(isinstance(m, dict) and "versions" in m
                                   for m in data["messages"][:5]))


def files(folder: Path) -> list[Path]:
    if (folder / "conversations").is_dir():
        folder = folder / "conversations"  # the ~/.lmstudio folder itself
    return sorted(p for p in folder.rglob(f"*{SUFFIX}") if p.is_file())


def scan(path: Path) -> Found:
    found = Found("lmstudio", shown(path))
    for file in files(path) if path.is_dir() else [path]:
        try:
            found.conversations.append(read_file(file))
        except ITEM_ERRORS as exc:
            found.problems.append(item_problem(shown(file), exc))
    return found


def read_file(file: Path) -> ImportedConversation:
    data = read_json(file)
    if not looks_like(data):
        raise ImportFormatError("it is not an LM Studio conversation (no messages with "
                                "versions).")
    created = epoch_seconds(data.get("createdAt"))
    try:
        mtime: float | None = file.stat().st_mtime
    except OSError:
        mtime = None
    last = [epoch_seconds(data.get(k)) for k in ("userLastMessagedAt",
                                                   "assistantLastMessagedAt")]
    updated = max([t for t in last if t] or [mtime or created or 0]) or None
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    system = data.get("systemPrompt") if isinstance(data.get("systemPrompt"), str) else ""
    # The file name is LM Studio's id for the chat (a rename changes only "name").
    result = ImportedConversation(
        app="lmstudio", source_id=file.name.removesuffix(SUFFIX), title=name.strip(),
        created_at=created, updated_at=updated, system_prompt=system, where=shown(file),
        model=str(as_dict(data.get("lastUsedModel")).get("identifier") or ""))
    for message in data["messages"]:
        version = _selected(message)
        if version is None:
            continue
        role = version.get("role")
        text = _version_text(version)
        if role not in ("user", "assistant", "system") or not text.strip():
            continue
        if role == "system" and not result.messages and not result.system_prompt:
            result.system_prompt = text
            continue
        result.messages.append(ImportedMessage(role, text, None))
    return result


def _selected(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return None
    versions = message.get("versions")
    if not isinstance(versions, list) or not versions:
        return message if "role" in message else None
    chosen = message.get("currentlySelected", 0)
    if not isinstance(chosen, int) or not 0 <= chosen < len(versions):
        chosen = 0
    version = versions[chosen]
    return version if isinstance(version, dict) else None


def _version_text(version: dict[str, Any]) -> str:
    if not isinstance(version.get("steps"), list):
        return text_of(version.get("content"))
    pieces = []
    for step in version["steps"]:
        if not isinstance(step, dict) or step.get("type") != "contentBlock":
            continue  # debug info, tool calls
        style = step.get("style")
        if isinstance(style, dict) and style.get("type") == "thinking":
            continue  # a reasoning model's thinking, not its answer
        pieces.append(text_of(step.get("content")))
    return "\n\n".join(p for p in pieces if p)
