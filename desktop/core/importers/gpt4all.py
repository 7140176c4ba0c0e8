"""GPT4All: its chats (`gpt4all-<id>.chat`, Qt QDataStream binary) and its LocalDocs collections
(`localdocs_v<N>.db`, SQLite), both in GPT4All's data folder (its "download path"):
~/.local/share/nomic.ai/GPT4All on Linux, ~/Library/Application Support/nomic.ai/GPT4All on
macOS, %LOCALAPPDATA%\\nomic.ai\\GPT4All on Windows.

The chat file format, as written by nomic-ai/gpt4all gpt4all-chat/src (docs/importers.md):

    chatlistmodel.cpp  ChatSaver::saveChats: quint32 magic 0xF5D553CC, qint32 version (1-12);
                       then QDataStream::Qt_6_2
    chat.cpp           Chat::serialize: qint64 creationDate, QString id, name, userName,
                       modelId (v<5: model file name), v>=3: QList<QString> collections,
                       then ChatLLM::serialize and ChatModel::serialize
    chatllm.cpp        ChatLLM::serialize: v>=11 nothing; before, legacy model state (skipped)
    chatmodel.h        ChatModel::serialize: int count, then each ChatItem
    chatmodel.cpp      ChatItem::serialize: (v<12: int id) QString name ("Prompt: ",
                       "Response: "...), value, (v<10: QString prompt) newResponse, bool
                       isCurrentResponse, stopped, thumbsUp, thumbsDown, (v>=11 responses: bool
                       isError), sources (v>=8: qsizetype count + 7 QStrings + 3 ints each;
                       v3-7: QString + QList<QString>), (v>=10: qsizetype count + QUrl +
                       QByteArray each), (v>=12: qsizetype count + sub-items, recursive)
    tool.cpp           ToolCallInfo::serialize (inside ToolCall sub-items)

QDataStream writes big-endian; a QString is a quint32 byte length (0xFFFFFFFF: null) and
UTF-16BE; a QByteArray a quint32 length and bytes; qsizetype is qint64. Every length and count
is checked against what is left of the file before it is used, so a damaged or hostile file is
one sentence, never a huge allocation or a crash.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path
from typing import Any

from desktop.core.importers.model import (
    ITEM_ERRORS,
    Found,
    ImportedCollection,
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Problem,
    epoch_seconds,
    item_problem,
    shown,
)

MAGIC = 0xF5D553CC
MAX_VERSION = 12
MAX_CHAT_BYTES = 2 * 1024 * 1024 * 1024  # old files carry the model's KV cache: big, but bounded
MAX_DEPTH = 8  # tool-call sub-items nest two levels in practice


class _Damaged(Exception):
    """The stream ended early or held an impossible value (turned into one sentence)."""


class QDataReader:
    """A bounded reader for the subset of QDataStream (Qt 6, big-endian) GPT4All writes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise _Damaged(f"it ends in the middle of the chat (wanted {n} bytes at offset "
                           f"{self.pos}, {self.left} left)")
        piece = self.data[self.pos:self.pos + n]
        self.pos += n
        return piece

    def skip(self, n: int) -> None:
        self.take(n)

    def _unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def u32(self) -> int:
        return int(self._unpack(">I"))

    def i32(self) -> int:
        return int(self._unpack(">i"))

    def i64(self) -> int:
        return int(self._unpack(">q"))

    def u64(self) -> int:
        return int(self._unpack(">Q"))

    def boolean(self) -> bool:
        return bool(self._unpack(">B"))

    def qstring(self) -> str:
        size = self.u32()
        if size == 0xFFFFFFFF:  # a null QString
            return ""
        if size % 2:
            raise _Damaged(f"a text at offset {self.pos - 4} has an odd byte length")
        return self.take(size).decode("utf-16-be", errors="replace")

    def qbytearray(self) -> bytes:
        size = self.u32()
        return b"" if size == 0xFFFFFFFF else self.take(size)

    def count(self, size: int, item_min: int) -> int:
        """A container size (`size` as read), refused when it cannot fit in what is left."""
        if size < 0 or size * item_min > self.left:
            raise _Damaged(f"a list at offset {self.pos} claims {size} items, more than the "
                           "file holds")
        return size

    def qstringlist(self) -> list[str]:
        # Qt 6 writes a container size as quint32 (0xFFFFFFFE then qint64 beyond 4G items).
        size = self.u32()
        if size == 0xFFFFFFFE:
            size = self.i64()
        return [self.qstring() for _ in range(self.count(size, 4))]

    def qvariant(self) -> Any:
        """The QVariants GPT4All writes in tool-call parameters (Qt 6 metatype ids)."""
        type_id = self.u32()
        is_null = self.boolean()
        readers = {0: lambda: None, 1: self.boolean, 2: self.i32, 3: self.u32, 4: self.i64,
                   5: self.u64, 6: lambda: self._unpack(">d"), 10: self.qstring,
                   12: self.qbytearray}
        if type_id not in readers:
            raise _Damaged(f"a tool call holds a value of Qt type {type_id}, which this "
                           "importer does not read")
        value = readers[type_id]()
        return None if is_null else value


def read_chat_file(path: Path) -> ImportedConversation:
    """One GPT4All chat file, or ImportFormatError with one sentence."""
    try:
        size = path.stat().st_size
        if size > MAX_CHAT_BYTES:
            raise ImportFormatError(f"it is {size // (1024 * 1024)} MB, too large for a chat.")
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"it could not be opened ({exc.strerror or exc}).") from exc
    conversation = parse_chat(data)
    conversation.where = shown(path)
    mtime = path.stat().st_mtime
    # GPT4All keeps no per-message times; the file is rewritten on every save, so its time is
    # when the chat last changed.
    conversation.updated_at = max(mtime, conversation.created_at or 0) or None
    return conversation


def parse_chat(data: bytes) -> ImportedConversation:
    """The bytes of a `.chat` file as a conversation, or ImportFormatError in one sentence."""
    try:
        return _parse_chat(data)
    except _Damaged as exc:
        raise ImportFormatError(f"it is damaged: {exc}.") from exc


def _parse_chat(data: bytes) -> ImportedConversation:
    stream = QDataReader(data)
    if len(data) < 8 or stream.u32() != MAGIC:
        raise ImportFormatError("it is not a GPT4All chat file (its first bytes are not "
                                "GPT4All's).")
    version = stream.i32()
    if not 1 <= version <= MAX_VERSION:
        raise ImportFormatError(f"it is a GPT4All chat of format version {version}; this "
                                f"importer reads versions 1 to {MAX_VERSION}.")
    # Chat::serialize
    created = stream.i64()
    chat_id = stream.qstring()
    name = stream.qstring()
    stream.qstring()  # userName
    model = stream.qstring()  # model id (v>=5) or model file name
    if version >= 3:
        stream.qstringlist()  # LocalDocs collections attached to the chat
    _skip_llm_state(stream, version)
    messages = _chat_items(stream, version, created)
    if stream.left:
        raise _Damaged(f"{stream.left} bytes follow the last message")
    return ImportedConversation(
        app="gpt4all", source_id=chat_id or f"created-{created}", title=name.strip(),
        created_at=epoch_seconds(created), updated_at=None, messages=messages, model=model)


def _skip_llm_state(stream: QDataReader, version: int) -> None:
    """ChatLLM::deserialize: before format 11 the model's state followed (now discarded)."""
    if version >= 11:
        return
    deserialize_kv = True
    if version >= 6:
        deserialize_kv = stream.boolean()
    if version >= 2:
        stream.i32()  # model type
        stream.i32()  # internal state version
    stream.qstring()  # response
    stream.qstring()  # generated name
    stream.u32()  # prompt + response token count
    if deserialize_kv:
        if version < 4:
            stream.u32()  # response logits
        stream.u32()  # n_past
        if version >= 7:
            stream.u32()  # n_ctx
        if version < 9:
            stream.skip(_bounded(stream.u64(), 4, stream))  # logits (floats)
        stream.skip(_bounded(stream.u64(), 4, stream))  # token cache (ints)
        stream.qbytearray()  # compressed state


def _bounded(count: int, item: int, stream: QDataReader) -> int:
    if count * item > stream.left:
        raise _Damaged(f"a saved model state at offset {stream.pos} is longer than the file")
    return count * item


def _chat_items(stream: QDataReader, version: int, created: int) -> list[ImportedMessage]:
    """ChatModel::deserialize; returns the prompts and responses as messages, in order."""
    size = stream.count(stream.i32(), 20)
    messages: list[ImportedMessage] = []
    when = epoch_seconds(created)
    for _ in range(size):
        if version < 12:
            stream.i32()  # item id
        name = stream.qstring()
        value = stream.qstring()
        if version < 10:
            stream.qstring()  # prompt (no longer used)
        stream.qstring()  # newResponse (DataLake)
        for _flag in range(4):  # isCurrentResponse, stopped, thumbsUp, thumbsDown
            stream.boolean()
        if version >= 11 and name == "Response: ":
            stream.boolean()  # isError
        _skip_sources(stream, version)
        if version >= 10:
            for _a in range(stream.count(stream.i64(), 8)):  # prompt attachments
                stream.qbytearray()  # QUrl (written as its encoded bytes)
                stream.qbytearray()  # content
        texts = []
        if version >= 12:
            for _s in range(stream.count(stream.i64(), 12)):
                texts.extend(_sub_item(stream, version, 1))
        # GPT4All shows the sub-items (text before a tool call) above the item's own value
        # (the answer written after the tool's result), as ChatModel::messageItems orders them.
        texts.append(value)
        role = {"Prompt: ": "user", "Response: ": "assistant", "System: ": "system"}.get(name)
        if role is None:
            raise _Damaged(f"an item is labelled {name!r}, which GPT4All does not write")
        messages.append(ImportedMessage(role, "\n\n".join(t for t in texts if t), when))
    return messages


def _skip_sources(stream: QDataReader, version: int) -> None:
    if version >= 8:
        for _ in range(stream.count(stream.i64(), 40)):
            for _text in range(7):  # collection, path, file, title, author, date, text
                stream.qstring()
            stream.i32()  # page
            stream.i32()  # from
            stream.i32()  # to
    elif version >= 3:
        stream.qstring()  # references
        stream.qstringlist()  # their contexts


def _sub_item(stream: QDataReader, version: int, depth: int) -> list[str]:
    """ChatItem::deserializeSubItems; the answer's text pieces (tool calls and their results
    are left out: they are GPT4All's tool plumbing, not the conversation)."""
    if depth > MAX_DEPTH:
        raise _Damaged("tool-call items nest deeper than GPT4All writes them")
    name = stream.qstring()
    value = stream.qstring()
    if name == "ToolCall: ":
        _skip_tool_call_info(stream)
    elif name not in ("Response: ", "ToolResponse: ", "Text: "):
        raise _Damaged(f"a sub-item is labelled {name!r}, which GPT4All does not write")
    texts = [value] if name in ("Response: ", "Text: ") else []
    for _ in range(stream.count(stream.i64(), 12)):
        texts.extend(_sub_item(stream, version, depth + 1))
    return texts


def _skip_tool_call_info(stream: QDataReader) -> None:
    stream.qstring()  # name
    for _ in range(stream.count(stream.i64(), 9)):
        stream.qstring()  # parameter name
        stream.i32()  # parameter type (enum)
        stream.qvariant()  # value
    stream.qstring()  # result
    stream.i32()  # error (enum)
    stream.qstring()  # error string


# --- LocalDocs -------------------------------------------------------------------------
def read_localdocs(path: Path) -> list[ImportedCollection]:
    """Collections and their folders from a `localdocs_v<N>.db` (gpt4all-chat/src/
    database.cpp: v1 `collections(collection_name, folder_id)` + `folders(id, folder_path)`;
    v2 and v3 `collections(id, name, ...)`, `folders(id, path)`, `collection_items`)."""
    try:
        # Read-only and immutable: GPT4All may be running; never write another app's database.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise ImportFormatError(f"it could not be opened ({exc}).") from exc
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "collection_items" in tables:
            rows = conn.execute(
                "SELECT c.name, f.path FROM collections c JOIN collection_items ci ON "
                "ci.collection_id = c.id JOIN folders f ON f.id = ci.folder_id "
                "ORDER BY c.name, f.path").fetchall()
        elif {"collections", "folders"} <= tables:
            rows = conn.execute(
                "SELECT c.collection_name, f.folder_path FROM collections c JOIN folders f "
                "ON c.folder_id = f.id ORDER BY c.collection_name, f.folder_path").fetchall()
        else:
            raise ImportFormatError("it is not a GPT4All LocalDocs database (no collections "
                                    "table).")
    except sqlite3.Error as exc:
        raise ImportFormatError(f"it is not a readable LocalDocs database ({exc}).") from exc
    finally:
        conn.close()
    collections: dict[str, list[str]] = {}
    for name, folder in rows:
        if isinstance(name, str) and isinstance(folder, str) and name.strip():
            collections.setdefault(name.strip(), []).append(folder)
    return [ImportedCollection(name, folders) for name, folders in collections.items()]


def localdocs_database(folder: Path) -> Path | None:
    """The newest `localdocs_v<N>.db` in GPT4All's folder (GPT4All upgrades into a new file
    and leaves the old ones behind)."""
    best: tuple[int, Path] | None = None
    for candidate in folder.glob("localdocs_v*.db"):
        digits = candidate.stem.removeprefix("localdocs_v")
        if digits.isdigit() and (best is None or int(digits) > best[0]):
            best = (int(digits), candidate)
    return best[1] if best else None


def chat_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("gpt4all-*.chat") if p.is_file())


def scan(path: Path) -> Found:
    """A GPT4All data folder, one `.chat` file or one LocalDocs database."""
    found = Found("gpt4all", shown(path))
    if path.is_file() and path.name.startswith("localdocs_v") and path.suffix == ".db":
        files, database = [], path
    elif path.is_file():
        files, database = [path], None
    else:
        files, database = chat_files(path), localdocs_database(path)
    for file in files:
        try:
            found.conversations.append(read_chat_file(file))
        except ITEM_ERRORS as exc:
            found.problems.append(item_problem(shown(file), exc))
    if database is not None:
        try:
            found.collections.extend(read_localdocs(database))
        except ImportFormatError as exc:
            found.problems.append(Problem(shown(database), exc.message))
    return found


def default_folder() -> Path:
    """Where GPT4All keeps chats and LocalDocs unless the user moved its download path."""
    home = Path.home()
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "nomic.ai" / \
            "GPT4All"
    if os.uname().sysname == "Darwin":
        return home / "Library" / "Application Support" / "nomic.ai" / "GPT4All"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "nomic.ai" / \
        "GPT4All"
