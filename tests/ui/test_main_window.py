"""The real window, offscreen, with the real model: type, stream, stop, reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from desktop.app import build_window
from desktop.core.settings import Settings


def _prepare(data_dir: Path, model: Path | None, **sampling: object) -> None:
    settings = Settings(data_dir / "settings.json")
    settings.values["starter_registered"] = True  # tests choose their model explicitly
    settings.values["last_model"] = str(model) if model else None
    settings.values["sampling"] = {**settings.get("sampling"), "temperature": 0, **sampling}
    settings.save()


@pytest.fixture
def open_window(qtbot):  # noqa: ANN001, ANN201 - pytest-qt fixture
    opened = []

    def _open(data_dir: Path):  # noqa: ANN202
        window = build_window(data_dir)
        qtbot.addWidget(window)
        window.show()
        opened.append(window)
        return window

    yield _open
    for window in opened:
        window.close()
        window.ctx.close()


def test_qt_setter_survives_20000_calls(qtbot) -> None:  # noqa: ANN001
    # PySide6 6.12.0 on CPython 3.11 corrupts None's refcount and aborts (DESIGN 8).
    label = QLabel()
    qtbot.addWidget(label)
    for i in range(20_000):
        label.setText(str(i))
    assert label.text() == "19999"


def test_message_typed_in_window_streams_and_survives_reopen(qtbot, open_window, data_dir: Path,
                                                              gemma_path: Path) -> None:
    _prepare(data_dir, gemma_path, max_tokens=24)
    window = open_window(data_dir)
    pieces: list[str] = []
    window.text_arrived.connect(pieces.append)
    qtbot.keyClicks(window.composer, "Hello, who are you?")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.generating, timeout=60_000)
    assert window.composer.isEnabled() and window.composer.toPlainText() == ""
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    # Screen readers hear that the reply is finished.
    assert window.last_announcement == "Reply finished: Hello, who are you?"
    assert len(pieces) >= 2, "the reply should arrive in several streamed pieces"
    widgets = window.chat_view.widgets
    assert [w.message.role for w in widgets] == ["user", "assistant"]
    reply = widgets[1].message
    assert reply.state == "done" and reply.content == "".join(pieces)
    assert widgets[1].body.toPlainText().strip()
    assert "tok/s" in widgets[1].header.text()
    assert window.context_meter.value() > 0
    assert window.sidebar.model.items[0].title == "Hello, who are you?"
    conversation_id = window.current_id
    window.close()
    window.ctx.close()

    reopened = open_window(data_dir)
    assert reopened.current_id == conversation_id
    contents = [w.message.content for w in reopened.chat_view.widgets]
    assert contents == ["Hello, who are you?", reply.content]


def test_shift_enter_adds_a_line_and_stop_keeps_partial_reply(qtbot, open_window, data_dir: Path,
                                                              gemma_path: Path) -> None:
    _prepare(data_dir, gemma_path, max_tokens=3000)
    window = open_window(data_dir)
    qtbot.keyClicks(window.composer, "Line one")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer, "Line two")
    assert window.composer.toPlainText() == "Line one\nLine two"
    assert not window.generating
    pieces: list[str] = []
    window.text_arrived.connect(pieces.append)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(pieces) >= 3, timeout=60_000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    messages = window.ctx.chats.messages(window.current_id)
    assert messages[0].content == "Line one\nLine two"
    assert messages[1].state == "stopped" and messages[1].content


def test_regenerate_and_edit_last_message(qtbot, open_window, data_dir: Path,
                                          gemma_path: Path) -> None:
    _prepare(data_dir, gemma_path, max_tokens=6)
    window = open_window(data_dir)
    window.send("First question")
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    first_reply = window.ctx.chats.messages(window.current_id)[1]
    window.regenerate()
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    messages = window.ctx.chats.messages(window.current_id)
    assert len(messages) == 2 and messages[1].id != first_reply.id
    window.edit_last("First question")
    assert window.composer.toPlainText() == "First question"
    window.composer.clear()
    window.send("Edited question")
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    messages = window.ctx.chats.messages(window.current_id)
    assert [m.content for m in messages][0] == "Edited question" and len(messages) == 2
    assert len(window.chat_view.widgets) == 2


def test_first_run_without_model_says_what_to_do(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    _prepare(data_dir, None)
    window = open_window(data_dir)
    assert window.stack.currentWidget() is window.empty
    qtbot.waitUntil(lambda: window.start_panel.view is not None, timeout=30_000)
    assert "no model yet" in window.start_panel.text.text().lower()
    window.send("hello")
    assert window.error_box.isVisible() and "Choose a model" in window.error_label.text()
    assert window.ctx.chats.conversations() == []


def test_sidebar_search_rename_delete(open_window, data_dir: Path, monkeypatch) -> None:  # noqa: ANN001
    _prepare(data_dir, None)
    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)
    a = ctx.chats.create_conversation("Holiday plans")
    b = ctx.chats.create_conversation("Tax questions")
    ctx.chats.add_message(b.id, "user", "home office deduction")
    ctx.close()
    window = open_window(data_dir)
    assert [c.title for c in window.sidebar.model.items] == ["Tax questions", "Holiday plans"]
    window.sidebar.search.setText("office")
    assert [c.id for c in window.sidebar.model.items] == [b.id]
    window.sidebar.search.clear()
    monkeypatch.setattr("desktop.ui.window_chats.QInputDialog.getText",
                        lambda *a, **k: ("Trip to Rome", True))
    window.rename_conversation(a.id)
    assert window.ctx.chats.conversation(a.id).title == "Trip to Rome"
    window.open_conversation(a.id)
    window.delete_conversation(a.id, confirm=False)
    assert [c.id for c in window.sidebar.model.items] == [b.id]
    assert window.current_id is None


def test_streaming_view_renders_incrementally(qtbot, open_window, data_dir: Path) -> None:
    _prepare(data_dir, None)
    window = open_window(data_dir)
    from desktop.core.store.chats import Message

    view = window.chat_view
    view.begin_stream(Message(0, 0, "assistant", "", "streaming", 0.0))
    text = "".join(f"word{i} " + ("\n\n" if i % 100 == 99 else "") for i in range(3000)) + \
        "\n\n```python\nprint('hi')\n\nprint('there')\n```\n"
    widget = view.widgets[-1]
    for i in range(0, len(text), 7):
        view.append(text[i:i + 7])
        if i % 7000 == 0:
            # Let the render timer (at most ~15 times a second) draw what has arrived.
            shown = text[:i + 7]
            qtbot.waitUntil(lambda shown=shown: widget.message.content == shown,
                            timeout=60_000)
    qtbot.waitUntil(lambda: widget.message.content == text, timeout=60_000)
    # While streaming, finished paragraphs were rendered once and kept; only the tail changes.
    assert widget._stable_chars > len(text) // 2
    assert "word2999" in widget.body.toPlainText()
    assert "print('there')" in widget.body.toPlainText()  # a blank line inside a fence
    view.end_stream(Message(0, 0, "assistant", text, "done", 0.0))
    assert widget.message.content == text
    assert "print('hi')" in widget.body.toPlainText()
    assert widget.renderer.code_blocks == ["print('hi')\n\nprint('there')\n"]


def test_interrupted_reply_can_be_continued(qtbot, open_window, data_dir: Path,
                                            gemma_path: Path) -> None:
    from desktop.core.context import AppContext

    _prepare(data_dir, gemma_path, max_tokens=12)
    ctx = AppContext(data_dir)
    conversation = ctx.chats.create_conversation("Story", model_path=str(gemma_path))
    ctx.chats.add_message(conversation.id, "user", "Tell me a story about a lighthouse.")
    cut = ctx.chats.add_message(conversation.id, "assistant", "", state="streaming")
    ctx.chats.set_content(cut.id, "Once upon a time, a lighthouse keeper")
    ctx.close()  # as if the app was killed mid-reply

    window = open_window(data_dir)  # start-up marks the reply interrupted and offers Continue
    window.open_conversation(conversation.id)
    last = window.chat_view.widgets[-1]
    assert last.message.state == "interrupted" and not last.continue_button.isHidden()
    assert "cut off" in window.chat_view.notice.text()
    last.continue_button.click()
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    messages = window.ctx.chats.messages(conversation.id)
    assert len(messages) == 2  # the same reply went on, no new message
    reply = messages[1]
    assert reply.content.startswith("Once upon a time, a lighthouse keeper")
    assert len(reply.content) > len("Once upon a time, a lighthouse keeper")
    assert reply.state == "done" and (reply.completion_tokens or 0) >= 12
    assert window.chat_view.widgets[-1].message.content == reply.content


def test_first_downloaded_model_is_chosen(open_window, data_dir: Path, gemma_path: Path,
                                          embed_model_path: Path) -> None:
    _prepare(data_dir, None)
    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)
    ctx.library.add(embed_model_path)  # an embedding model alone is no chat model
    ctx.close()
    window = open_window(data_dir)
    assert window.ctx.settings.get("last_model") is None
    window.ctx.library.add(gemma_path)  # e.g. the first download finished
    window.refresh_models()
    assert window.ctx.settings.get("last_model") == str(gemma_path)
    assert window.model_box.currentData() == str(gemma_path)


def test_a_chat_exports_to_markdown_and_json(open_window, data_dir: Path,
                                             tmp_path: Path) -> None:
    import json

    _prepare(data_dir, None)
    window = open_window(data_dir)
    chats = window.ctx.chats
    conversation = chats.create_conversation(system_prompt="Be brief.")
    chats.add_message(conversation.id, "user", "What is a heron?")
    chats.add_message(conversation.id, "assistant", "A long-legged *wading* bird.")
    window.refresh_conversations()
    window.export_conversation(conversation.id, str(tmp_path / "heron.md"))
    text = (tmp_path / "heron.md").read_text()
    assert "> System: Be brief." in text and "**You**\n\nWhat is a heron?" in text
    assert "**Assistant**\n\nA long-legged *wading* bird." in text
    assert "Exported to" in window.chat_view.notice.text()
    window.export_conversation(conversation.id, str(tmp_path / "heron.json"))
    data = json.loads((tmp_path / "heron.json").read_text())
    assert [m["content"] for m in data["messages"]] == ["What is a heron?",
                                                         "A long-legged *wading* bird."]
    window.export_conversation(conversation.id, str(tmp_path / "missing" / "x.md"))
    assert window.error_box.isVisible() and "Could not write" in window.error_label.text()
