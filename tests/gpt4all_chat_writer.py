"""Writes GPT4All `.chat` files byte for byte as GPT4All does, for the importer's tests.

It follows nomic-ai/gpt4all, gpt4all-chat/src (format versions 10 to 12):
- chatlistmodel.cpp, ChatSaver::saveChats: `out << CHAT_FORMAT_MAGIC` (quint32 0xF5D553CC),
  `out << CHAT_FORMAT_VERSION` (qint32), `out.setVersion(QDataStream::Qt_6_2)`;
- chat.cpp, Chat::serialize: `m_creationDate` (qint64), `m_id`, `m_name`, `m_userName`,
  `m_modelInfo.id()` (QString), `m_collections` (QList<QString>), then ChatLLM and ChatModel;
- chatllm.cpp, ChatLLM::serialize: version < 11 writes `false` (serializeKV, v>=6), the model
  type and a 0 state version (ints), two empty QStrings, `quint32(0)`; version >= 11 nothing;
- chatmodel.h, ChatModel::serialize: `int(m_chatItems.size())`, then each item;
- chatmodel.cpp, ChatItem::serialize: name, value, newResponse (QStrings); isCurrentResponse,
  stopped, thumbsUpState, thumbsDownState (bool); isError for responses (v>=11); sources
  (`sources.size()`, a qsizetype, then collection, path, file, title, author, date, text as
  QStrings and page, from, to as ints); prompt attachments (qsizetype count, QUrl, QByteArray);
  v>=12 sub-items (qsizetype count, ChatItem::serializeSubItems: name, value, for tool calls
  ToolCallInfo::serialize from tool.cpp, then a qsizetype count and the sub-items).
  (ChatModel moves sources from prompts to responses before v11; callers give them where the
  version keeps them.)

QDataStream's encoding (big-endian): QString = quint32 byte length + UTF-16BE (0xFFFFFFFF for a
null string); QByteArray = quint32 length + bytes; QUrl = its encoded form as a QByteArray;
QList = quint32 count + items; bool = one byte; qsizetype = qint64; an enum = qint32; a
QVariant = quint32 type id + bool is-null + the value. tests/core/test_importers.py checks these
against PySide6's own QDataStream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

MAGIC = 0xF5D553CC
LLAMA_MODEL_TYPE = 2  # LLModelTypeV1::LLAMA (chatllm.h); only versions < 11 write it


class Stream:
    def __init__(self) -> None:
        self.out = bytearray()

    def u32(self, v: int) -> Stream:
        self.out += struct.pack(">I", v)
        return self

    def i32(self, v: int) -> Stream:
        self.out += struct.pack(">i", v)
        return self

    def i64(self, v: int) -> Stream:
        self.out += struct.pack(">q", v)
        return self

    def boolean(self, v: bool) -> Stream:
        self.out += b"\x01" if v else b"\x00"
        return self

    def qstring(self, v: str | None) -> Stream:
        if v is None:
            return self.u32(0xFFFFFFFF)
        data = v.encode("utf-16-be")
        self.u32(len(data))
        self.out += data
        return self

    def qbytearray(self, v: bytes | None) -> Stream:
        if v is None:
            return self.u32(0xFFFFFFFF)
        self.u32(len(v))
        self.out += v
        return self

    def qstringlist(self, items: list[str]) -> Stream:
        self.u32(len(items))
        for item in items:
            self.qstring(item)
        return self

    def qvariant(self, v: Any) -> Stream:
        if isinstance(v, bool):
            return self.u32(1).boolean(False).boolean(v)
        if isinstance(v, int):
            return self.u32(2).boolean(False).i32(v)
        if isinstance(v, float):
            self.u32(6).boolean(False)
            self.out += struct.pack(">d", v)
            return self
        return self.u32(10).boolean(False).qstring(str(v))


@dataclass
class Source:
    collection: str
    path: str
    file: str
    text: str
    title: str = ""
    author: str = ""
    date: str = ""
    page: int = -1
    line_from: int = -1
    line_to: int = -1


@dataclass
class ToolCall:
    name: str
    params: list[tuple[str, int, Any]]  # name, ToolEnums::ParamType, value
    result: str = ""
    error: int = 0
    error_string: str = ""


@dataclass
class SubItem:
    name: str  # "Response: ", "Text: ", "ToolCall: ", "ToolResponse: "
    value: str
    tool_call: ToolCall | None = None
    children: list[SubItem] = field(default_factory=list)


@dataclass
class Item:
    name: str  # "Prompt: " or "Response: "
    value: str
    new_response: str = ""
    is_current_response: bool = False
    stopped: bool = False
    thumbs_up: bool = False
    thumbs_down: bool = False
    is_error: bool = False
    sources: list[Source] = field(default_factory=list)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)  # encoded URL, content
    sub_items: list[SubItem] = field(default_factory=list)


def prompt(text: str, **more: Any) -> Item:
    return Item("Prompt: ", text, **more)


def response(text: str, **more: Any) -> Item:
    return Item("Response: ", text, **more)


def chat_file(*, chat_id: str, name: str, items: list[Item], created: int = 1_700_000_000,
              model_id: str = "Llama 3 8B Instruct", collections: list[str] | None = None,
              user_name: str = "", version: int = 12) -> bytes:
    assert 10 <= version <= 12, "this writer follows formats 10 to 12"
    s = Stream()
    s.u32(MAGIC).i32(version)
    # Chat::serialize
    s.i64(created).qstring(chat_id).qstring(name).qstring(user_name).qstring(model_id)
    s.qstringlist(collections or [])
    # ChatLLM::serialize
    if version < 11:
        s.boolean(False)  # serializeKV (v >= 6)
        s.i32(LLAMA_MODEL_TYPE).i32(0)  # model type, state version (v >= 2)
        s.qstring("").qstring("")  # dummy response and generated name (empty, not null)
        s.u32(0)  # prompt + response tokens
    # ChatModel::serialize
    s.i32(len(items))
    for item in items:
        _item(s, item, version)
    return bytes(s.out)


def _item(s: Stream, item: Item, version: int) -> None:
    if version < 12:
        s.i32(0)  # the item id older versions wrote first (ChatItem::deserialize reads it)
    s.qstring(item.name).qstring(item.value).qstring(item.new_response)
    s.boolean(item.is_current_response).boolean(item.stopped)
    s.boolean(item.thumbs_up).boolean(item.thumbs_down)
    if version >= 11 and item.name == "Response: ":
        s.boolean(item.is_error)
    s.i64(len(item.sources))
    for src in item.sources:
        for text in (src.collection, src.path, src.file, src.title, src.author, src.date,
                     src.text):
            s.qstring(text)
        s.i32(src.page).i32(src.line_from).i32(src.line_to)
    s.i64(len(item.attachments))
    for url, content in item.attachments:
        s.qbytearray(url.encode())
        s.qbytearray(content)
    if version >= 12:
        s.i64(len(item.sub_items))
        for sub in item.sub_items:
            _sub_item(s, sub)


def _sub_item(s: Stream, sub: SubItem) -> None:
    s.qstring(sub.name).qstring(sub.value)
    if sub.name == "ToolCall: ":
        call = sub.tool_call or ToolCall("", [])
        s.qstring(call.name).i64(len(call.params))
        for name, kind, value in call.params:
            s.qstring(name).i32(kind).qvariant(value)
        s.qstring(call.result).i32(call.error).qstring(call.error_string)
    s.i64(len(sub.children))
    for child in sub.children:
        _sub_item(s, child)
