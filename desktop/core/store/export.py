"""A conversation as Markdown or JSON, for the CLI's `history export` and the window's Export."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from desktop.core.errors import HearthError
from desktop.core.store.chats import ChatStore, Message
from desktop.core.store.images import MIME, ImageStore

REASONING_FIELDS = ("reasoning", "reasoning_s")


def _message_data(message: Message, with_thinking: bool,
                  images: ImageStore | None = None) -> dict[str, Any]:
    data = message.as_dict()
    if not with_thinking:
        for key in REASONING_FIELDS:
            data.pop(key, None)
    data.pop("images_json", None)
    data.pop("spec_json", None)
    if message.spec:  # speculative decoding's stats, as an object rather than a JSON string
        data["spec"] = message.spec
    if message.images and images is not None:
        data["images"] = [_image_data(images, digest) for digest in message.images]
    return data


def _image_data(images: ImageStore, digest: str) -> dict[str, Any]:
    """An image of a message, inside the export (base64): the export stands alone."""
    import base64

    path = images.path(digest)
    if path is None:
        return {"sha256": digest, "missing": True}
    return {"sha256": digest, "type": MIME.get(path.suffix[1:], "image/png"),
            "base64": base64.b64encode(path.read_bytes()).decode("ascii")}


def conversation_data(chats: ChatStore, conversation_id: int,
                      with_thinking: bool = False) -> dict[str, Any]:
    """The chat as plain data. A reasoning model's thinking is left out unless asked for: it
    is long, and people share exports for the answers."""
    conversation = chats.conversation(conversation_id)
    images = ImageStore(chats.db.path.parent)  # the data dir holds the database and images/
    return {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "model_path": conversation.model_path,
        "system_prompt": conversation.system_prompt,
        "settings": conversation.settings,
        # A chat that used a remote server left this machine: the hosts it went to.
        "remote_hosts": list(conversation.settings.get("remote_hosts") or []),
        "messages": [_message_data(m, with_thinking, images)
                     for m in chats.messages(conversation_id)],
    }


def to_markdown(data: dict[str, Any]) -> str:
    lines = [f"# {data['title'] or 'Untitled chat'}", ""]
    if data.get("remote_hosts"):
        lines += [f"> Left this machine: sent to a remote server at "
                  f"{', '.join(data['remote_hosts'])}.", ""]
    if data["system_prompt"]:
        lines += [f"> System: {data['system_prompt']}", ""]
    for message in data["messages"]:
        who = {"user": "You", "assistant": "Assistant"}.get(message["role"], message["role"])
        note = "" if message["state"] == "done" else f" _({message['state']})_"
        lines += [f"**{who}**{note}", ""]
        if message.get("reasoning"):
            seconds = message.get("reasoning_s")
            took = f" ({seconds:.0f} s)" if seconds else ""
            lines += [f"<details><summary>Thinking{took}</summary>", "", message["reasoning"], "",
                      "</details>", ""]
        for image in message.get("images") or []:
            # Data URIs: the Markdown file shows its pictures without a folder beside it.
            lines += ([f"![image {image['sha256'][:12]}](data:{image['type']};base64,"
                       f"{image['base64']})", ""] if "base64" in image
                      else [f"_(image {image['sha256'][:12]} is missing)_", ""])
        lines += [message["content"], ""]
    return "\n".join(lines)


def export_text(data: dict[str, Any], fmt: str) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) if fmt == "json" else to_markdown(data)


def write_export(chats: ChatStore, conversation_id: int, path: Path | str,
                 with_thinking: bool = False) -> Path:
    """Write the chat to `path`, as JSON for a .json name and Markdown otherwise. The file
    appears whole or not at all (written beside it, then renamed)."""
    target = Path(path)
    text = export_text(conversation_data(chats, conversation_id, with_thinking),
                       "json" if target.suffix.lower() == ".json" else "md")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".hearth-export-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise HearthError(f"Could not write {target}: {exc.strerror or exc}.") from exc
    return target
