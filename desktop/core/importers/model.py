"""The common shape every importer reads another app's chats into, and the helpers they share.

Importers only read: they turn files into `Found` (conversations, LocalDocs collections and
one sentence per thing that could not be read). Writing into Hearth is `apply.py`'s job.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.errors import HearthError

APPS = ("gpt4all", "chatgpt", "lmstudio", "jan", "openwebui")
APP_NAMES = {"gpt4all": "GPT4All", "chatgpt": "ChatGPT", "lmstudio": "LM Studio", "jan": "Jan",
             "openwebui": "Open WebUI"}

# A chat export is text; anything bigger than this is not one (or would not fit in memory).
MAX_JSON_BYTES = 1024 * 1024 * 1024


class ImportFormatError(HearthError):
    """A file or folder that is not (or no longer) in the format its app writes."""


@dataclass
class ImportedMessage:
    role: str  # user | assistant | system
    content: str
    created_at: float | None = None  # seconds since the epoch; None: the app kept no time


@dataclass
class ImportedConversation:
    app: str
    source_id: str  # the app's own id for the conversation: the key that makes imports idempotent
    title: str
    created_at: float | None
    updated_at: float | None
    messages: list[ImportedMessage] = field(default_factory=list)
    system_prompt: str = ""
    model: str = ""  # the model the app used, for information only
    where: str = ""  # the file it came from, as people read it

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.source_id)


@dataclass
class ImportedCollection:
    """A GPT4All LocalDocs collection: a name and the folders it indexes."""

    name: str
    folders: list[str]


@dataclass
class Problem:
    where: str  # a file, or a file and the item in it
    message: str  # one sentence

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Found:
    """What one import source holds."""

    app: str
    source: str
    conversations: list[ImportedConversation] = field(default_factory=list)
    collections: list[ImportedCollection] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: Found) -> None:
        self.conversations.extend(other.conversations)
        self.collections.extend(other.collections)
        self.problems.extend(other.problems)


def shown(path: Path | str) -> str:
    """A path as people read it (the home folder as ~)."""
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home):] if home != os.sep and text.startswith(home + os.sep) else text


def epoch_seconds(value: Any) -> float | None:
    """Seconds since the epoch from what apps write: seconds, milliseconds, microseconds or
    nanoseconds (told apart by size: no chat predates 2001 or postdates 5000), or an ISO 8601
    string. None for anything else, so a bad timestamp never stops an import."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=_dt.UTC)
            return moment.timestamp()
        value = number
    if not isinstance(value, int | float) or value != value or value <= 0:
        return None
    seconds = float(value)
    for _ in range(3):
        if seconds < 1e11:  # before the year 5138 in seconds
            break
        seconds /= 1000.0
    return seconds if 1e8 < seconds < 1e11 else None


def read_json(path: Path) -> Any:
    """Parse a JSON file, or raise one sentence saying why it cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ImportFormatError(f"it is {size // (1024 * 1024)} MB, too large for a chat "
                                    "export.")
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"it could not be opened ({exc.strerror or exc}).") from exc
    return parse_json(raw)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ImportFormatError("it is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"it is not valid JSON (line {exc.lineno}, column "
                                f"{exc.colno}: {exc.msg}).") from exc
    except RecursionError as exc:
        raise ImportFormatError("it nests deeper than any chat export does.") from exc


# What a damaged or unexpected value can raise while one item is read: that item's problem,
# never the whole import's (the rest goes on).
ITEM_ERRORS = (ImportFormatError, RecursionError, ValueError, TypeError, AttributeError,
               KeyError, IndexError)


def item_problem(where: str, exc: Exception) -> Problem:
    if isinstance(exc, ImportFormatError):
        return Problem(where, exc.message)
    return Problem(where, f"it is not laid out as this importer expects ({type(exc).__name__}).")


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (a damaged file reads as missing)."""
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def text_of(value: Any) -> str:
    """A message's text from a string, or from a list of parts apps write: strings, or
    objects with `text` (a string, or an object with `value`) or `content`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        pieces = [text_of(part) for part in value]
        return "\n".join(p for p in pieces if p)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind not in (None, "text", "input_text", "output_text"):
            return ""  # images, files, tool calls: not text
        text = value.get("text")
        if isinstance(text, dict):
            text = text.get("value")
        if isinstance(text, str):
            return text
        content = value.get("content")
        return text_of(content) if content is not None else ""
    return ""
