"""Importers: each app's sample files (tests/import_samples.py) are read with their titles,
times, roles and order; damaged files become one sentence while the rest is read; importing
into a real data dir keeps all of it and a second import adds nothing."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.importers import ImportFormatError, detect, make_preview, run_import, scan
from desktop.core.importers.apply import ALREADY, EMPTY, NEW
from desktop.core.importers.gpt4all import parse_chat
from desktop.core.importers.model import epoch_seconds
from tests import import_samples as samples
from tests.gpt4all_chat_writer import Source, SubItem, ToolCall, chat_file, prompt, response

T0 = samples.T0


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    docs = tmp_path / "My Docs ü"
    docs.mkdir()
    (docs / "fieldnotes.txt").write_text("The quokka colony lives on Rottnest Island.\n",
                                         encoding="utf-8")
    return {"gpt4all": samples.write_gpt4all(tmp_path / "GPT4All", docs),
            "chatgpt": samples.write_chatgpt(tmp_path / "chatgpt-export"),
            "lmstudio": samples.write_lmstudio(tmp_path / ".lmstudio"),
            "jan": samples.write_jan(tmp_path / "jan"),
            "openwebui": samples.write_openwebui(tmp_path / "owui")}


def _by_title(found):  # noqa: ANN001, ANN202
    return {c.title: c for c in found.conversations}


def _turns(conversation):  # noqa: ANN001, ANN202
    return [(m.role, m.content) for m in conversation.messages]


# --- GPT4All's binary format ------------------------------------------------------------
def test_the_test_writer_matches_qt_datastream_byte_for_byte() -> None:
    """The sample writer's encoding is QDataStream's own: the same chat written call by call
    with PySide6's QDataStream (as chatlistmodel.cpp, chat.cpp and chatmodel.cpp do) gives the
    same bytes."""
    from PySide6.QtCore import QByteArray, QDataStream, QIODevice, QUrl

    ours = chat_file(
        chat_id="id-1", name="Naïve ☃", created=T0, model_id="Model X", collections=["A", "B"],
        items=[prompt("q\nline", sources=[Source("A", "/d/f.txt", "f.txt", "ctx", page=3)],
                      attachments=[("file:///tmp/a%20b.txt", b"body")]),
               response("ans", stopped=True, thumbs_up=True, sub_items=[
                   SubItem("Response: ", "", children=[
                       SubItem("Text: ", "pre"),
                       SubItem("ToolCall: ", "call", tool_call=ToolCall(
                           "f", [("code", 0, "1+1"), ("n", 2, 5)], result="2"))]),
                   SubItem("ToolResponse: ", "2")])])
    buffer = QByteArray()
    out = QDataStream(buffer, QIODevice.OpenModeFlag.WriteOnly)
    out.writeUInt32(0xF5D553CC)
    out.writeInt32(12)
    out.setVersion(QDataStream.Version.Qt_6_2)
    out.writeInt64(T0)
    for text in ("id-1", "Naïve ☃", "", "Model X"):
        out.writeQString(text)
    out.writeQStringList(["A", "B"])
    out.writeInt32(2)  # int(m_chatItems.size())
    # the prompt
    for text in ("Prompt: ", "q\nline", ""):
        out.writeQString(text)
    for flag in (False, False, False, False):
        out.writeBool(flag)
    out.writeInt64(1)  # sources.size(), a qsizetype
    for text in ("A", "/d/f.txt", "f.txt", "", "", "", "ctx"):
        out.writeQString(text)
    for number in (3, -1, -1):
        out.writeInt32(number)
    out.writeInt64(1)
    out << QUrl("file:///tmp/a%20b.txt")
    out << QByteArray(b"body")
    out.writeInt64(0)  # no sub-items
    # the response
    for text in ("Response: ", "ans", ""):
        out.writeQString(text)
    for flag in (False, True, True, False, False):  # ..., thumbsDown, isError
        out.writeBool(flag)
    out.writeInt64(0)
    out.writeInt64(0)
    out.writeInt64(2)
    out.writeQString("Response: ")
    out.writeQString("")
    out.writeInt64(2)
    out.writeQString("Text: ")
    out.writeQString("pre")
    out.writeInt64(0)
    out.writeQString("ToolCall: ")
    out.writeQString("call")
    out.writeQString("f")  # ToolCallInfo::serialize
    out.writeInt64(2)
    out.writeQString("code")
    out.writeInt32(0)
    out.writeQVariant("1+1")
    out.writeQString("n")
    out.writeInt32(2)
    out.writeQVariant(5)
    out.writeQString("2")
    out.writeInt32(0)
    out.writeQString("")
    out.writeInt64(0)
    out.writeQString("ToolResponse: ")
    out.writeQString("2")
    out.writeInt64(0)
    assert ours == bytes(buffer.data())


def test_gpt4all_chats_and_localdocs(sources: dict[str, Path]) -> None:
    found = scan(sources["gpt4all"])
    assert found.app == "gpt4all"
    chats = _by_title(found)
    cafe = chats["Café ☕ and Zürich"]
    assert cafe.source_id == "0b7c5f2e-1111-4c2a-9d7e-aaaaaaaaaaaa"
    assert cafe.created_at == T0 and cafe.model == "Llama 3 8B Instruct"
    assert _turns(cafe) == [
        ("user", "Grüß dich! Wie geht's? 🙂"), ("assistant", "Sehr gut, danke.\n\nUnd dir?"),
        ("user", samples.MULTILINE),
        # the text before a tool call, then the answer after it; the call itself is left out
        ("assistant", "Let me compute that.\n\nComputed it.")]
    assert _turns(chats["Old format chat"]) == [("user", "Hello from v10"),
                                                ("assistant", "Hi! 日本語もOK")]
    assert chats["Nothing said"].messages == []
    [problem] = found.problems
    assert problem.where.endswith("gpt4all-44444444-4444-4444-8444-444444444444.chat")
    assert problem.message.startswith("it is damaged: it ends in the middle")
    [collection] = found.collections
    assert collection.name == "Recherche ü"
    assert collection.folders[0].endswith("My Docs ü")


@pytest.mark.parametrize("version", [10, 11, 12])
def test_gpt4all_format_versions(version: int) -> None:
    data = chat_file(chat_id="v", name="n", version=version,
                     items=[prompt("a"), response("b", is_error=True), prompt("c")])
    assert _turns(parse_chat(data)) == [("user", "a"), ("assistant", "b"), ("user", "c")]


def test_gpt4all_refuses_other_files_and_future_versions() -> None:
    with pytest.raises(ImportFormatError, match="not a GPT4All chat file"):
        parse_chat(b"\x89PNG\r\n\x1a\n" + bytes(40))
    future = bytearray(chat_file(chat_id="v", name="n", items=[]))
    future[4:8] = (13).to_bytes(4, "big")
    with pytest.raises(ImportFormatError, match="format version 13"):
        parse_chat(bytes(future))


def test_gpt4all_damaged_bytes_are_one_sentence_never_a_crash() -> None:
    """Every truncation and a few hundred random corruptions: ImportFormatError or a parse,
    never another exception, a hang or a huge allocation (lengths are checked first)."""
    data = chat_file(chat_id="id", name="Fuzz ✓", collections=["c"], items=[
        prompt("hello", sources=[Source("c", "/p", "p", "t")], attachments=[("file:///x", b"1")]),
        response("world", sub_items=[SubItem("ToolCall: ", "x", tool_call=ToolCall(
            "f", [("a", 0, "b")]))])])
    for end in range(len(data)):
        with pytest.raises(ImportFormatError):
            parse_chat(data[:end])
    rng = random.Random(13)
    for _ in range(400):
        broken = bytearray(data)
        for _flip in range(rng.randint(1, 4)):
            broken[rng.randrange(8, len(broken))] = rng.randrange(256)
        try:
            parse_chat(bytes(broken))
        except ImportFormatError as exc:
            assert exc.message.endswith(".") and "\n" not in exc.message


# --- JSON formats -------------------------------------------------------------------------
def test_chatgpt_imports_the_branch_ending_at_current_node(sources: dict[str, Path]) -> None:
    found = scan(sources["chatgpt"])
    chats = _by_title(found)
    trip = chats["Planning a trip to Kraków 🇵🇱"]
    assert trip.source_id == "c-branch" and trip.created_at == T0 + 0.5
    assert trip.updated_at == T0 + 500.25
    # the edited question and its answer; the first version, the hidden system node are not
    assert _turns(trip) == [("user", samples.MULTILINE),
                            ("assistant", "Wawel Castle — definitely.\nAnd pierogi.")]
    assert [m.created_at for m in trip.messages] == [T0 + 100, T0 + 110]
    # code sent to a tool and the tool's output are left out; an image becomes a note
    assert _turns(chats["Chart"]) == [("user", "Plot y=x²"),
                                      ("assistant", "[image not imported]\nHere is the plot.")]
    assert chats["New chat"].messages == []
    assert [str(p) for p in found.problems] == [
        f"{found.source} (conversation 4): it has no message mapping."]


def test_chatgpt_zip_export(sources: dict[str, Path], tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(sources["chatgpt"], "conversations.json")
        out.writestr("chat.html", "<html></html>")
    assert detect(archive) == "chatgpt"
    assert len(scan(archive).conversations) == 3


def test_lmstudio_takes_the_selected_version(sources: dict[str, Path]) -> None:
    found = scan(sources["lmstudio"])
    chats = _by_title(found)
    resume = chats["Résumé tips ✍️"]
    assert resume.source_id == f"{(T0 + 5000) * 1000}"
    assert resume.created_at == T0 + 5000 and resume.updated_at == T0 + 5200
    assert resume.system_prompt == "You are concise." and resume.model == "qwen2.5-7b-instruct"
    assert _turns(resume) == [("user", samples.MULTILINE),
                              ("assistant", "Second answer, chosen"),
                              ("user", "Thanks — 谢谢")]
    assert "Sub-folder chat" in chats and chats["Untitled"].messages == []
    [problem] = found.problems
    assert problem.where.endswith("1700009999999.conversation.json")
    assert "not valid JSON" in problem.message


def test_jan_threads(sources: dict[str, Path]) -> None:
    found = scan(sources["jan"])
    chats = _by_title(found)
    greek = chats["Ελληνικά και emoji 🎉"]
    assert greek.model == "llama3.2-3b-instruct"
    assert (greek.created_at, greek.updated_at) == (T0 + 8000, T0 + 8300)
    # written newest first in the file, imported in time order; the broken line is reported
    assert _turns(greek) == [("user", "Γεια"), ("assistant", "Γεια σου!\nHow can I help?"),
                             ("user", samples.MULTILINE)]
    assert [m.created_at for m in greek.messages] == [T0 + 8050, T0 + 8100, T0 + 8200]
    assert chats["New Thread"].messages == []
    problems = sorted(str(p) for p in found.problems)
    assert len(problems) == 2
    assert "messages.jsonl line 3: this message is not valid JSON" in problems[0]
    assert "jan_1700030000: its thread.json could not be read" in problems[1]
    # one thread folder, or its thread.json, is a source too
    one = sources["jan"] / "threads" / "jan_1700010000"
    assert [c.title for c in scan(one / "thread.json").conversations] == [greek.title]


def test_openwebui_follows_current_id(sources: dict[str, Path]) -> None:
    found = scan(sources["openwebui"])
    chats = _by_title(found)
    zones = chats["Zeitzonen 🕘"]
    assert zones.system_prompt == "Antworte auf Deutsch." and zones.model == "llama3.1:8b"
    assert _turns(zones) == [("user", "Wie spät ist es in Tōkyō?"),
                             ("assistant", "Es ist 9 Uhr."), ("user", samples.MULTILINE)]
    assert [m.created_at for m in zones.messages] == [T0 + 20000, T0 + 20010, T0 + 20030]
    assert _turns(chats["Legacy list"]) == [("user", "ping"), ("assistant", "pong")]
    assert chats["New Chat"].messages == []
    assert [p.message for p in found.problems] == ["it has no chat."]


def test_detect(sources: dict[str, Path], tmp_path: Path) -> None:
    for app, path in sources.items():
        assert detect(path) == app
    assert detect(next((sources["gpt4all"]).glob("*.chat"))) == "gpt4all"
    assert detect(sources["lmstudio"] / "conversations") == "lmstudio"
    other = tmp_path / "notes.json"
    other.write_text('{"hello": "world"}', encoding="utf-8")
    with pytest.raises(ImportFormatError, match="found no chats it knows how to import"):
        detect(other)
    with pytest.raises(ImportFormatError, match="There is no file or folder"):
        scan(tmp_path / "missing")
    with pytest.raises(ImportFormatError, match="No Jan chats were found"):
        scan(tmp_path / "My Docs ü", "jan")


def test_epoch_seconds_units() -> None:
    assert epoch_seconds(T0) == epoch_seconds(T0 * 1000) == epoch_seconds(T0 * 10**9) == T0
    assert epoch_seconds("2023-11-14T22:13:20Z") == T0
    assert epoch_seconds(None) is None and epoch_seconds("soon") is None
    assert epoch_seconds(-5) is None and epoch_seconds(True) is None


# --- into Hearth ------------------------------------------------------------------------
def test_import_keeps_everything_and_twice_adds_nothing(sources: dict[str, Path],
                                                         data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        totals = {}
        for app, path in sources.items():
            preview = make_preview(ctx, path)
            assert preview.count(ALREADY) == 0
            report = run_import(ctx, preview, index=False)
            totals[app] = len(report.added)
            assert len(report.added) == preview.count(NEW)
            assert report.empty == preview.count(EMPTY) == 1
            assert report.problems  # every sample has something damaged, and says so
        assert totals == {"gpt4all": 2, "chatgpt": 2, "lmstudio": 2, "jan": 1, "openwebui": 2}
        conversations = {c.title: c for c in ctx.chats.conversations()}
        assert len(conversations) == 9

        trip = conversations["Planning a trip to Kraków 🇵🇱"]
        assert trip.settings["imported_from"] == {"app": "chatgpt", "id": "c-branch"}
        assert (trip.created_at, trip.updated_at) == (T0 + 0.5, T0 + 500.25)
        messages = ctx.chats.messages(trip.id)
        assert [(m.role, m.content, m.created_at, m.state) for m in messages] == [
            ("user", samples.MULTILINE, T0 + 100, "done"),
            ("assistant", "Wawel Castle — definitely.\nAnd pierogi.", T0 + 110, "done")]
        resume = conversations["Résumé tips ✍️"]
        assert resume.system_prompt == "You are concise."
        assert [m.created_at for m in ctx.chats.messages(resume.id)] == [T0 + 5000] * 3
        # imported chats sort among the others by their own times, and search finds them
        assert [c.title for c in ctx.chats.search("Γεια")] == ["Ελληνικά και emoji 🎉"]
        dated = ["Legacy list", "Zeitzonen 🕘", "Ελληνικά και emoji 🎉",
                 "Planning a trip to Kraków 🇵🇱"]  # newest first, by the apps' own times
        assert [c.title for c in ctx.chats.conversations() if c.title in dated] == dated

        for path in sources.values():
            again = make_preview(ctx, path)
            assert again.count(NEW) == 0
            report = run_import(ctx, again, index=False)
            assert report.added == [] and report.already == again.count(ALREADY)
        assert len(ctx.chats.conversations()) == 9
        # even a stale preview (made before the first import) adds nothing the second time
        assert run_import(ctx, make_preview(ctx, sources["jan"]), index=False).added == []
    finally:
        ctx.close()


def test_localdocs_collections_are_indexed_once(sources: dict[str, Path],
                                                data_dir: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        preview = make_preview(ctx, sources["gpt4all"])
        [entry] = preview.collections
        assert entry.status == NEW and [os.path.basename(m) for m in entry.missing] == [
            "gone-folder"]
        report = run_import(ctx, preview)
        [job] = report.jobs
        assert job.done.wait(60) and job.status == "done", job.error_text
        assert job.state.indexed == 1
        assert any("gone-folder" in p.message and "left out" in p.message
                   for p in report.problems)
        collection = ctx.documents.collection_id("Recherche ü")
        [document] = ctx.documents.documents(collection)
        assert document["path"].endswith("fieldnotes.txt") and document["status"] == "indexed"
        from desktop.core.documents.retrieve import search

        [hit] = search(ctx.db, "quokka", [collection], k=3, mode="bm25")
        assert "Rottnest" in hit.text

        second = run_import(ctx, make_preview(ctx, sources["gpt4all"]))
        assert second.added == [] and second.collections[0]["status"] == "add folders"
        [job] = second.jobs
        assert job.done.wait(60) and job.state.indexed == 0 and \
            job.state.skipped_unchanged == 1
        assert len(ctx.documents.documents(collection)) == 1
    finally:
        ctx.close()


def test_json_sources_with_wrong_values_are_read_or_reported(sources: dict[str, Path]) -> None:
    """Any value of the JSON exports replaced by a value of another type: the scan still
    returns, naming the item it could not read, and never raises."""
    import json

    rng = random.Random(7)
    junk = [None, 0, -1, 1e300, "", "x", [], {}, [None], {"": None}, True]

    def nodes(value, path=()):  # noqa: ANN001, ANN202
        yield path
        children = value.items() if isinstance(value, dict) else \
            enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            yield from nodes(child, (*path, key))

    files = [sources["chatgpt"], sources["openwebui"],
             next((sources["lmstudio"] / "conversations").glob("17000050*.json"))]
    for file in files:
        original = json.loads(file.read_text(encoding="utf-8"))
        app = detect(file)
        every = list(nodes(original))
        for _ in range(150):
            data = json.loads(json.dumps(original))
            for _edit in range(rng.randint(1, 3)):
                path = rng.choice(every)
                if not path:
                    continue
                parent = data
                try:
                    for key in path[:-1]:
                        parent = parent[key]
                    parent[path[-1]] = json.loads(json.dumps(rng.choice(junk)))
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier edit removed this node
            file.write_text(json.dumps(data), encoding="utf-8")
            try:
                found = scan(file, app)
            except ImportFormatError as exc:  # nothing of the app's left at all
                assert exc.message.endswith(".")
                continue
            for problem in found.problems:
                assert problem.message.endswith(".") and "\n" not in problem.message
        file.write_text(json.dumps(original), encoding="utf-8")
