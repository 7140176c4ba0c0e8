"""ChatGPT's data export: `conversations.json` (in the export's .zip, or unpacked).

A list of conversations, each `{"id" | "conversation_id", "title", "create_time",
"update_time", "mapping": {node_id: {"id", "message", "parent", "children"}}, "current_node"}`;
a message is `{"author": {"role"}, "create_time", "content": {"content_type", "parts"},
"recipient", "metadata"}`. The mapping is a tree (every edit and regeneration is a branch);
what the user last saw is the branch that ends at `current_node`, and that is what is imported.
Sources: docs/importers.md.
"""

from __future__ import annotations

import hashlib
import zipfile
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
    as_dict,
    as_text,
    epoch_seconds,
    item_problem,
    parse_json,
    read_json,
    shown,
    text_of,
)

# Content kinds that are the conversation's text; the rest (reasoning summaries, code sent to
# tools, browsing results, custom instructions) is ChatGPT's machinery.
TEXT_KINDS = ("text", "multimodal_text")


def looks_like(data: Any) -> bool:
    items = data if isinstance(data, list) else [data]
    return bool(items) and all(isinstance(c, dict) for c in items[:5]) and any(
        isinstance(c.get("mapping"), dict) for c in items[:5])


def load(path: Path) -> Any:
    """The parsed conversations.json from the file, the export's folder or its .zip."""
    if path.is_dir():
        path = path / "conversations.json"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist()
                         if n == "conversations.json" or n.endswith("/conversations.json")]
                if not names:
                    raise ImportFormatError("this .zip has no conversations.json: it is not a "
                                            "ChatGPT data export.")
                info = archive.getinfo(names[0])
                if info.file_size > MAX_JSON_BYTES:
                    raise ImportFormatError("its conversations.json is too large to read.")
                return parse_json(archive.read(info))
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportFormatError(f"the .zip could not be read ({exc}).") from exc
    return read_json(path)


def scan(path: Path) -> Found:
    found = Found("chatgpt", shown(path))
    try:
        data = load(path)
    except ImportFormatError as exc:
        found.problems.append(Problem(shown(path), exc.message))
        return found
    items = data if isinstance(data, list) else [data]
    if not looks_like(items):
        found.problems.append(Problem(shown(path), "it is not a ChatGPT conversations.json "
                                      "(no conversation has a message mapping)."))
        return found
    for n, item in enumerate(items, start=1):
        where = f"{shown(path)} (conversation {n})"
        try:
            found.conversations.append(conversation(item, where))
        except ITEM_ERRORS as exc:
            found.problems.append(item_problem(where, exc))
    return found


def conversation(item: Any, where: str) -> ImportedConversation:
    if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
        raise ImportFormatError("it has no message mapping.")
    mapping: dict[str, Any] = item["mapping"]
    created = epoch_seconds(item.get("create_time"))
    title = as_text(item.get("title"))
    source_id = item.get("conversation_id") or item.get("id")
    if not isinstance(source_id, str) or not source_id:
        # Old exports have no id: the title and creation time identify it as well.
        source_id = "sha1:" + hashlib.sha1(f"{title}\0{item.get('create_time')}".encode()
                                           ).hexdigest()
    result = ImportedConversation(
        app="chatgpt", source_id=source_id, title=title.strip(), created_at=created,
        updated_at=epoch_seconds(item.get("update_time")) or created, where=where,
        model=str(item.get("default_model_slug") or ""))
    for node in _branch(mapping, item.get("current_node")):
        message = node.get("message") if isinstance(node, dict) else None
        if not isinstance(message, dict):
            continue
        role = as_dict(message.get("author")).get("role")
        metadata = as_dict(message.get("metadata"))
        if role not in ("user", "assistant", "system") or metadata.get(
                "is_visually_hidden_from_conversation"):
            continue
        if message.get("recipient", "all") != "all":
            continue  # a call to a tool (code, browsing), not words to the user
        content = as_dict(message.get("content"))
        if content.get("content_type", "text") not in TEXT_KINDS:
            continue
        text = _parts_text(content.get("parts"))
        if not text.strip():
            continue
        when = epoch_seconds(message.get("create_time"))
        if role == "system" and not result.messages and not result.system_prompt:
            result.system_prompt = text
            continue
        result.messages.append(ImportedMessage(role, text, when or created))
    return result


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return text_of(parts)
    pieces = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict) and as_text(part.get("content_type")).endswith(
                "asset_pointer"):
            pieces.append("[image not imported]")
        else:
            pieces.append(text_of(part))
    return "\n".join(p for p in pieces if p)


def _branch(mapping: dict[str, Any], current: Any) -> list[Any]:
    """The nodes from the root down to `current_node`; without one (old exports), the branch
    that always takes the newest child."""
    if not isinstance(current, str) or current not in mapping:
        roots = [k for k, v in mapping.items() if isinstance(v, dict)
                 and not (isinstance(v.get("parent"), str) and v["parent"] in mapping)]
        current = roots[0] if roots else None
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            listed = as_dict(mapping[current]).get("children")
            children = [c for c in listed if isinstance(c, str) and c in mapping] \
                if isinstance(listed, list) else []
            if not children:
                break
            current = children[-1]
    path: list[Any] = []
    seen = set()
    node_id = current
    while isinstance(node_id, str) and node_id in mapping and node_id not in seen:
        seen.add(node_id)  # a parent loop in a damaged file ends the walk
        node = mapping[node_id]
        path.append(node)
        node_id = node.get("parent") if isinstance(node, dict) else None
    path.reverse()
    return path
