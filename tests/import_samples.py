"""Sample data of each app Hearth imports from, written to each app's published or observed
format (sources in docs/importers.md): unicode, multi-line messages, an empty conversation and a
damaged file (or item) beside the good ones. Used by the core, CLI and window tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.gpt4all_chat_writer import Source, SubItem, ToolCall, chat_file, prompt, response

MULTILINE = "Line one\n  indented line two\n\n• bullet ✓"
T0 = 1_700_000_000  # 2023-11-14, seconds


def write_gpt4all(folder: Path, docs: Path | None = None) -> Path:
    """GPT4All's data folder: three chats (formats 12 and 10, one empty), a truncated chat, and
    a LocalDocs database whose collection points at `docs` and at a folder that is gone."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpt4all-0b7c5f2e-1111-4c2a-9d7e-aaaaaaaaaaaa.chat").write_bytes(chat_file(
        chat_id="0b7c5f2e-1111-4c2a-9d7e-aaaaaaaaaaaa", name="Café ☕ and Zürich",
        created=T0, collections=["Notes"],
        items=[prompt("Grüß dich! Wie geht's? 🙂"),
               response("Sehr gut, danke.\n\nUnd dir?", sources=[]),
               prompt(MULTILINE, sources=[Source("Notes", "/home/u/notes.txt", "notes.txt",
                                                 "excerpt", page=2)]),
               response("Computed it.", sub_items=[
                   SubItem("Response: ", "", children=[
                       SubItem("Text: ", "Let me compute that."),
                       SubItem("ToolCall: ", "<tool_call>...</tool_call>", tool_call=ToolCall(
                           "javascript_interpret", [("code", 0, "6*7"), ("n", 2, 3)],
                           result="42"))]),
                   SubItem("ToolResponse: ", "42")])]))
    (folder / "gpt4all-22222222-2222-4222-8222-222222222222.chat").write_bytes(chat_file(
        chat_id="22222222-2222-4222-8222-222222222222", name="Old format chat",
        created=T0 + 3600, version=10,
        items=[prompt("Hello from v10"), response("Hi! 日本語もOK")]))
    (folder / "gpt4all-33333333-3333-4333-8333-333333333333.chat").write_bytes(chat_file(
        chat_id="33333333-3333-4333-8333-333333333333", name="Nothing said", created=T0 + 7200,
        items=[]))
    whole = chat_file(chat_id="44444444-4444-4444-8444-444444444444", name="Cut short",
                      items=[prompt("This file was cut"), response("in the middle")])
    (folder / "gpt4all-44444444-4444-4444-8444-444444444444.chat").write_bytes(whole[:-9])
    if docs is not None:
        conn = sqlite3.connect(folder / "localdocs_v3.db")
        # The v2/v3 tables from gpt4all-chat/src/database.cpp INIT_DB_SQL (the ones read).
        conn.executescript("""
            create table collections(id integer primary key, name text unique not null,
                start_update_time integer, last_update_time integer, embedding_model text);
            create table folders(id integer primary key autoincrement, path text unique not null);
            create table collection_items(collection_id integer not null,
                folder_id integer not null, unique(collection_id, folder_id));
        """)
        conn.execute("insert into collections(id, name, embedding_model) values "
                     "(1, 'Recherche ü', 'nomic-embed-text-v1.5')")
        conn.execute("insert into folders(id, path) values (1, ?), (2, ?)",
                     (str(docs), str(docs.parent / "gone-folder")))
        conn.execute("insert into collection_items values (1, 1), (1, 2)")
        conn.commit()
        conn.close()
    return folder


def _node(node_id: str, parent: str | None, children: list[str], role: str | None,
          text: str | None, when: float | None, **message: object) -> dict[str, object]:
    return {"id": node_id, "parent": parent, "children": children,
            "message": None if role is None else {
                "id": node_id, "author": {"role": role, "name": None, "metadata": {}},
                "create_time": when, "update_time": None,
                "content": {"content_type": "text", "parts": [text]}, "status":
                "finished_successfully", "end_turn": True, "weight": 1.0,
                "metadata": message.pop("metadata", {}), "recipient": "all", **message}}


def write_chatgpt(folder: Path) -> Path:
    """An unpacked ChatGPT export: conversations.json with an edited (branched) chat whose
    current_node is on the second branch, a chat with a tool call and an image, an empty chat,
    and a damaged item."""
    folder.mkdir(parents=True, exist_ok=True)
    branched = {
        "title": "Planning a trip to Kraków 🇵🇱", "create_time": T0 + 0.5,
        "update_time": T0 + 500.25, "conversation_id": "c-branch", "id": "c-branch",
        "current_node": "a2", "default_model_slug": "gpt-4o",
        "mapping": {
            "root": _node("root", None, ["sys"], None, None, None),
            "sys": _node("sys", "root", ["u1"], "system", "", None,
                         metadata={"is_visually_hidden_from_conversation": True}),
            "u1": _node("u1", "sys", ["a1", "u1b"], "user", "First version of the question",
                        T0 + 10),
            "a1": _node("a1", "u1", [], "assistant", "Answer to the first version", T0 + 20),
            "u1b": _node("u1b", "u1", ["a2"], "user", MULTILINE, T0 + 100),
            "a2": _node("a2", "u1b", [], "assistant", "Wawel Castle — definitely.\nAnd pierogi.",
                        T0 + 110),
        }}
    # u1b is an edit of u1 in ChatGPT's tree: make it a sibling (both children of sys).
    branched["mapping"]["sys"]["children"] = ["u1", "u1b"]  # type: ignore[index]
    branched["mapping"]["u1"]["children"] = ["a1"]  # type: ignore[index]
    branched["mapping"]["u1b"]["parent"] = "sys"  # type: ignore[index]
    tools = {
        "title": "Chart", "create_time": T0 + 1000, "update_time": T0 + 1100, "id": "c-tools",
        "current_node": "t4",
        "mapping": {
            "t1": _node("t1", None, ["t2"], "user", "Plot y=x²", T0 + 1001),
            "t2": _node("t2", "t1", ["t3"], "assistant", "import matplotlib", T0 + 1002,
                        recipient="python"),
            "t3": _node("t3", "t2", ["t4"], "tool", "<image>", T0 + 1003),
            "t4": _node("t4", "t3", [], "assistant", "Here is the plot.", T0 + 1004),
        }}
    tools["mapping"]["t2"]["message"]["content"] = {  # type: ignore[index]
        "content_type": "code", "language": "python", "text": "import matplotlib"}
    tools["mapping"]["t4"]["message"]["content"] = {  # type: ignore[index]
        "content_type": "multimodal_text",
        "parts": [{"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"},
                  "Here is the plot."]}
    empty = {"title": "New chat", "create_time": T0 + 2000, "update_time": T0 + 2000,
             "id": "c-empty", "current_node": "e0",
             "mapping": {"e0": _node("e0", None, [], None, None, None)}}
    damaged = {"title": "Damaged", "create_time": T0, "id": "c-damaged", "mapping": "oops"}
    (folder / "conversations.json").write_text(
        json.dumps([branched, tools, empty, damaged], ensure_ascii=False), encoding="utf-8")
    return folder / "conversations.json"


def _lms_text(role: str, text: str) -> dict[str, object]:
    return {"type": "singleStep", "role": role, "content": [{"type": "text", "text": text}]}


def _lms_reply(text: str) -> dict[str, object]:
    return {"type": "multiStep", "role": "assistant", "senderInfo": {"senderName": "qwen"},
            "steps": [{"type": "contentBlock", "stepIdentifier": "1",
                       "style": {"type": "thinking", "title": "Thought"},
                       "content": [{"type": "text", "text": "hidden reasoning"}]},
                      {"type": "contentBlock", "stepIdentifier": "2",
                       "content": [{"type": "text", "text": text}],
                       "genInfo": {"stats": {"tokensPerSecond": 30.5}}},
                      {"type": "debugInfoBlock", "debugInfo": "Conversation naming"}]}


def write_lmstudio(folder: Path) -> Path:
    """~/.lmstudio/conversations: a chat whose reply was regenerated (version 2 shown), one in
    a sub-folder, an empty one and a truncated file."""
    conversations = folder / "conversations"
    (conversations / "Work").mkdir(parents=True, exist_ok=True)
    chat = {
        "name": "Résumé tips ✍️", "pinned": False, "createdAt": (T0 + 5000) * 1000,
        "userLastMessagedAt": (T0 + 5100) * 1000, "assistantLastMessagedAt": (T0 + 5200) * 1000,
        "systemPrompt": "You are concise.", "tokenCount": 120,
        "lastUsedModel": {"identifier": "qwen2.5-7b-instruct"},
        "messages": [
            {"versions": [_lms_text("user", MULTILINE)], "currentlySelected": 0},
            {"versions": [_lms_reply("First answer"), _lms_reply("Second answer, chosen")],
             "currentlySelected": 1},
            {"versions": [_lms_text("user", "Thanks — 谢谢")], "currentlySelected": 0},
        ]}
    (conversations / f"{(T0 + 5000) * 1000}.conversation.json").write_text(
        json.dumps(chat, ensure_ascii=False), encoding="utf-8")
    other = {"name": "Sub-folder chat", "createdAt": (T0 + 6000) * 1000,
             "messages": [{"versions": [_lms_text("user", "hi")], "currentlySelected": 0},
                          {"versions": [_lms_reply("hello")], "currentlySelected": 0}]}
    (conversations / "Work" / f"{(T0 + 6000) * 1000}.conversation.json").write_text(
        json.dumps(other), encoding="utf-8")
    (conversations / f"{(T0 + 7000) * 1000}.conversation.json").write_text(
        json.dumps({"name": "Untitled", "createdAt": (T0 + 7000) * 1000, "messages": []}),
        encoding="utf-8")
    (conversations / "1700009999999.conversation.json").write_text(
        json.dumps(chat)[:200], encoding="utf-8")
    return folder


def write_jan(folder: Path) -> Path:
    """Jan's data folder: a thread (ms times, one broken line, messages out of order), an
    empty thread and a thread whose thread.json is damaged."""
    threads = folder / "threads"

    def message(n: int, role: str, text: str, when: int) -> str:
        return json.dumps({"id": f"01J{n:04d}", "object": "thread.message",
                           "thread_id": "jan_1700010000", "assistant_id": "jan", "role": role,
                           "content": [{"type": "text", "text": {"value": text,
                                                                 "annotations": []}}],
                           "status": "ready", "created_at": when, "completed_at": when,
                           "metadata": {}}, ensure_ascii=False)

    good = threads / "jan_1700010000"
    good.mkdir(parents=True)
    (good / "thread.json").write_text(json.dumps({
        "id": "jan_1700010000", "object": "thread", "title": "Ελληνικά και emoji 🎉",
        "assistants": [{"assistant_id": "jan", "assistant_name": "Jan",
                        "model": {"id": "llama3.2-3b-instruct"}, "instructions": ""}],
        "created": (T0 + 8000) * 1000, "updated": (T0 + 8300) * 1000, "metadata": {}},
        ensure_ascii=False), encoding="utf-8")
    (good / "messages.jsonl").write_text("\n".join([
        message(2, "assistant", "Γεια σου!\nHow can I help?", (T0 + 8100) * 1000),
        message(1, "user", "Γεια", (T0 + 8050) * 1000),
        '{"id": "broken", "role": "user", "content": [',
        message(3, "user", MULTILINE, (T0 + 8200) * 1000),
    ]) + "\n", encoding="utf-8")
    empty = threads / "jan_1700020000"
    empty.mkdir()
    (empty / "thread.json").write_text(json.dumps({
        "id": "jan_1700020000", "object": "thread", "title": "New Thread",
        "created": (T0 + 9000) * 1000, "updated": (T0 + 9000) * 1000}), encoding="utf-8")
    (empty / "messages.jsonl").write_text("", encoding="utf-8")
    bad = threads / "jan_1700030000"
    bad.mkdir()
    (bad / "thread.json").write_text('{"id": "jan_1700030000", "title": ', encoding="utf-8")
    return folder


def write_openwebui(folder: Path) -> Path:
    """Open WebUI's "Export chats" file: a chat with a regenerated reply (currentId on the
    second), an old-style chat with only `messages`, an empty chat and a damaged item."""
    folder.mkdir(parents=True, exist_ok=True)
    history = {
        "currentId": "m3b",
        "messages": {
            "m1": {"id": "m1", "parentId": None, "childrenIds": ["m2"], "role": "user",
                   "content": "Wie spät ist es in Tōkyō?", "timestamp": T0 + 20000},
            "m2": {"id": "m2", "parentId": "m1", "childrenIds": ["m3a", "m3b"],
                   "role": "assistant", "content": "Es ist 9 Uhr.", "timestamp": T0 + 20010,
                   "model": "llama3.1:8b"},
            "m3a": {"id": "m3a", "parentId": "m2", "childrenIds": [], "role": "user",
                    "content": "Abandoned edit", "timestamp": T0 + 20020},
            "m3b": {"id": "m3b", "parentId": "m2", "childrenIds": [], "role": "user",
                    "content": MULTILINE, "timestamp": T0 + 20030},
        }}
    chats = [
        {"id": "owu-1", "user_id": "u", "title": "Zeitzonen 🕘", "created_at": T0 + 20000,
         "updated_at": T0 + 20030, "archived": False, "pinned": False, "meta": {},
         "folder_id": None,
         "chat": {"id": "", "title": "Zeitzonen 🕘", "models": ["llama3.1:8b"],
                  "params": {"system": "Antworte auf Deutsch."}, "history": history,
                  "messages": list(history["messages"].values()),  # type: ignore[attr-defined]
                  "tags": [], "timestamp": (T0 + 20000) * 1000}},
        {"id": "owu-2", "title": "Legacy list", "created_at": T0 + 21000,
         "updated_at": T0 + 21100,
         "chat": {"messages": [
             {"id": "x1", "role": "user", "content": "ping", "timestamp": T0 + 21000},
             {"id": "x2", "role": "assistant", "content": "pong", "timestamp": T0 + 21001}]}},
        {"id": "owu-3", "title": "New Chat", "created_at": T0 + 22000, "updated_at": T0 + 22000,
         "chat": {"history": {"messages": {}, "currentId": None}, "messages": []}},
        {"id": "owu-4", "title": "Broken", "chat": "not a chat"},
    ]
    path = folder / "chat-export-1700000000.json"
    path.write_text(json.dumps(chats, ensure_ascii=False), encoding="utf-8")
    return path
