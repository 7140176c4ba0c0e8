"""A reasoning model's thinking in the real window, offscreen, with the real test model under
real reasoning templates: the "Thinking…" section streams collapsed, counts, expands to the
stored thinking, and Copy copies the answer only; the per-chat thinking switch shows where
the model's template has one and reaches the template; the colours keep 4.5:1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from desktop.core.context import AppContext
from desktop.core.store.chats import Message
from desktop.ui import theme
from desktop.ui.chat_settings import ChatSettingsDialog
from desktop.ui.message_widget import MessageWidget
from desktop.ui.thinking_section import duration
from tests.gguf_files import with_chat_template
from tests.ui.window_fixtures import drawn_contrast, open_window, prepare, region

__all__ = ["open_window"]

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
# Gemma 3 270M (a base model) repeats its prompt: under DeepSeek-R1's template, which opens
# <think> in the generation prompt, its reply starts as thinking and the repeated </think>
# closes it (as in tests/core/test_reasoning.py).
ASK = "Repeat exactly: I should add them.</think>The answer is 4."


def _model(gemma_path: Path, folder: Path, name: str) -> Path:
    template = (TEMPLATES / name).read_text(encoding="utf-8")
    return with_chat_template(gemma_path, folder / f"gemma-{name}.gguf", template)


@pytest.fixture(scope="module")
def r1_model(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(gemma_path, tmp_path_factory.mktemp("r1"), "deepseek-r1-distill-qwen.jinja")


@pytest.fixture(scope="module")
def qwen3_model(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(gemma_path, tmp_path_factory.mktemp("q3"), "qwen3-0.6b.jinja")


def _load(qtbot, window, path: Path) -> None:  # noqa: ANN001
    window.load_model(str(path))
    qtbot.waitUntil(lambda: not window.loading and window.service.model is not None
                    and window.service.model.path == str(path), timeout=60_000)


def test_thinking_streams_collapsed_then_expands_to_the_stored_thinking(
        qtbot, open_window, data_dir: Path, r1_model: Path) -> None:  # noqa: ANN001
    prepare(data_dir, r1_model, max_tokens=24)
    window = open_window(data_dir)
    _load(qtbot, window, r1_model)  # loaded first: the reply's ticks all fall in the stream
    view = window.chat_view
    seen: list[tuple[bool, bool, str, bool]] = []

    def look() -> None:  # after every render tick of the view (connected after its own)
        widget = view.widgets[-1] if view.widgets else None
        if widget is not None and widget.message.state == "streaming" \
                and widget.thinking.isVisible():
            seen.append((widget.thinking.expanded, widget.thinking.live,
                         widget.thinking.header.text(), widget.body.isVisible()))

    view._timer.timeout.connect(look)
    window.new_chat()
    window.send(ASK)
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)

    reply = window.ctx.chats.messages(window.current_id)[-1]
    assert reply.state == "done" and reply.reasoning and reply.content
    # While it streamed: collapsed, counting ("Thinking… N s"), the answer not yet there.
    assert seen, "the thinking section never showed while the reply streamed"
    assert all(not expanded for expanded, *_ in seen)
    thinking_ticks = [text for _, live, text, _ in seen if live]
    assert thinking_ticks and all(t.startswith("▸ Thinking… ") and t.endswith(" s")
                                  for t in thinking_ticks)
    assert not seen[0][3], "the answer area showed before the answer started"

    widget = view.widgets[-1]
    section = widget.thinking
    assert section.isVisible() and not section.expanded and not section.body.isVisible()
    assert reply.reasoning_s is not None
    assert section.header.accessibleName() == f"Thought for {duration(reply.reasoning_s)}"
    # The answer area holds the answer only: no markers, no thinking.
    shown = widget.body.toPlainText()
    assert shown.strip() == reply.content.strip()
    assert "<think>" not in shown and "</think>" not in shown

    # The keyboard: the conversation's arrow keys reach the header first, Space opens it.
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_End)
    qtbot.keyClick(view, Qt.Key.Key_Right)  # the message's first button
    assert view.focused_widget() == (widget, section.header)
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert section.expanded and section.body.isVisible()
    assert section.body.toPlainText() == reply.reasoning
    assert section.header.text().startswith("▾ Thought for ")
    assert "Expanded" in section.header.accessibleDescription()
    qtbot.keyClick(view, Qt.Key.Key_Return)  # closes it again
    assert not section.expanded and not section.body.isVisible()
    # On the header itself (when it has the keyboard), Enter and Space toggle it too.
    qtbot.keyClick(section.header, Qt.Key.Key_Return)
    assert section.expanded
    qtbot.keyClick(section.header, Qt.Key.Key_Space)
    assert not section.expanded

    # Copy copies the answer only.
    QGuiApplication.clipboard().clear()
    widget.copy_button.click()
    assert QGuiApplication.clipboard().text() == reply.content

    # The context meter counts the thinking: it is part of the reply's tokens.
    tokens = window.service.ctx.engine.count_tokens([reply.reasoning, reply.content])
    assert reply.completion_tokens is not None and reply.completion_tokens >= sum(tokens) - 2
    assert window.context_meter.value() == reply.prompt_tokens + reply.completion_tokens

    # Regenerate streams its thinking the same way (on_reasoning on that path too).
    streamed: list[str] = []
    window.reasoning_arrived.connect(streamed.append)
    window.regenerate()
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
    again = window.ctx.chats.messages(window.current_id)[-1]
    assert again.id != reply.id and again.reasoning == reply.reasoning  # greedy: the same
    assert "".join(streamed) == again.reasoning == view.widgets[-1].thinking.text
    assert view.widgets[-1].message.versions == [reply.id, again.id]

    # Opened again later, the stored thinking is there, collapsed.
    window.new_chat()
    window.open_conversation(reply.conversation_id)
    again = view.widgets[-1].thinking
    assert again.isVisible() and not again.expanded and again.text == reply.reasoning


def test_label_counts_while_thinking_and_stops_when_the_answer_starts(qtbot) -> None:  # noqa: ANN001
    widget = MessageWidget(Message(0, 1, "assistant", "", "streaming", time.time()))
    qtbot.addWidget(widget)
    widget.show()
    section = widget.thinking
    now = [100.0]
    section.clock = lambda: now[0]  # the section's clock, turned by hand instead of waited on
    widget.render_reasoning("Let me think")
    assert section.isVisible() and not widget.progress_row.isVisible()
    assert section.header.text() == "▸ Thinking… 0 s"
    now[0] = 104.2
    section.tick()
    assert section.header.text() == "▸ Thinking… 4 s"
    assert section.header.accessibleName() == "Thinking… 4 s"
    widget.render_reasoning("Let me think about it.")
    assert section.text == "Let me think about it."
    now[0] = 105.0
    widget.render_streaming("The answer.")
    assert not section.live and section.header.text() == "▸ Thought for 5 s"
    now[0] = 200.0
    section.tick()
    assert section.header.text() == "▸ Thought for 5 s"  # stopped counting
    # At the end the worker's measured duration replaces the window's.
    done = Message(7, 1, "assistant", "The answer.", "done", time.time(),
                   reasoning="Let me think about it.", reasoning_s=12.4)
    widget.update_message(done)
    assert section.header.text() == "▸ Thought for 12 s"
    assert [duration(s) for s in (0.3, 59.6, 65, 120)] == ["under 1 s", "1 min", "1 min 5 s",
                                                           "2 min"]


def _thinking_shown(window) -> tuple[bool | None, bool]:  # noqa: ANN001
    """Open Chat settings in the window and read its thinking controls: the switch (None when
    not shown, else whether it is on) and whether an effort level is shown."""
    found: list[tuple[bool | None, bool]] = []

    def grab() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChatSettingsDialog):
            QTimer.singleShot(10, grab)
            return
        switch = dialog.thinking
        found.append((None if switch is None else switch.isChecked(), dialog.effort is not None))
        dialog.reject()

    QTimer.singleShot(0, grab)
    window.settings_button.click()
    return found[0]


def test_thinking_switch_shows_per_chat_and_reaches_the_template(
        qtbot, open_window, data_dir: Path, gemma_path: Path,
        qwen3_model: Path) -> None:  # noqa: ANN001
    prepare(data_dir, gemma_path, max_tokens=12)
    ctx = AppContext(data_dir)
    plain = ctx.chats.create_conversation("", model_path=str(gemma_path))
    qwen = ctx.chats.create_conversation("", model_path=str(qwen3_model))
    other = ctx.chats.create_conversation("", model_path=str(qwen3_model))
    ctx.close()
    window = open_window(data_dir)

    # A model whose template has no switch: no thinking control.
    _load(qtbot, window, gemma_path)
    window.open_conversation(plain.id)
    assert _thinking_shown(window) == (None, False)

    # Qwen3's template reads enable_thinking: the switch shows, on by default.
    _load(qtbot, window, qwen3_model)
    window.open_conversation(qwen.id)

    def switch_off() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChatSettingsDialog):
            QTimer.singleShot(10, switch_off)
            return
        assert dialog.thinking is not None and dialog.thinking.isChecked()
        assert dialog.effort is None  # Qwen3 has no effort level
        dialog.thinking.setChecked(False)
        dialog.accept()

    QTimer.singleShot(0, switch_off)
    window.settings_button.click()
    saved = window.ctx.chats.conversation(qwen.id)
    assert saved.settings["thinking"] is False
    assert saved.settings["temperature"] == 0  # the sampling was saved with it, not lost
    assert _thinking_shown(window) == (False, False)  # shown as saved

    # It reaches the template: the prompt closes an empty <think>, the reply is all answer.
    from desktop.core.chat.templates import parts_text

    window.send("Hi")
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
    model = window.service.model
    prompt = parts_text(window.service.build_prompt(
        window.ctx.chats.conversation(qwen.id), model, {}))
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                           "<think>\n\n</think>\n\n") or prompt.endswith("<think>\n\n</think>\n\n")
    reply = window.ctx.chats.messages(qwen.id)[-1]
    assert reply.state == "done" and reply.reasoning is None
    assert not window.chat_view.widgets[-1].thinking.isVisible()

    # Per chat: another chat of the same model still thinks.
    window.open_conversation(other.id)
    assert _thinking_shown(window) == (True, False)
    window.ctx.chats.add_message(other.id, "user", "Hi")
    assert parts_text(window.service.build_prompt(
        window.ctx.chats.conversation(other.id), model, {})).endswith("<|im_start|>assistant\n")


def test_effort_level_where_the_model_has_one(qtbot) -> None:  # noqa: ANN001
    dialog = ChatSettingsDialog("", {"temperature": 0.7, "seed": None,
                                     "reasoning_effort": "high"},
                                thinking={"thinking_switch": False, "effort": True})
    qtbot.addWidget(dialog)
    assert dialog.thinking is None and dialog.effort is not None
    assert dialog.effort.currentData() == "high"
    dialog.effort.setCurrentIndex(dialog.effort.findData("low"))
    assert dialog.values()[1]["reasoning_effort"] == "low"
    assert "thinking" not in dialog.values()[1]


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_thinking_colours_keep_contrast(qtbot, open_window, data_dir: Path,
                                        mode: str) -> None:  # noqa: ANN001
    prepare(data_dir, None, theme_mode=mode)
    ctx = AppContext(data_dir)
    chat = ctx.chats.create_conversation("Apples")
    ctx.chats.add_message(chat.id, "user", "3 apples and 2 bags of 4?")
    reply = ctx.chats.add_message(chat.id, "assistant", "", state="streaming")
    ctx.chats.finish_message(reply.id, "done", "You have 11 apples.", reasoning=(
        "2 bags of 4 is 8. 8 + 3 = 11."), reasoning_s=3.2)
    ctx.close()
    window = open_window(data_dir, (1000, 700))
    theme.apply_theme(mode)
    window.open_conversation(chat.id)
    section = window.chat_view.widgets[-1].thinking
    section.set_expanded(True)
    window.chat_view.relayout()
    qtbot.waitUntil(lambda: section.body.isVisible() and section.body.height() > 10)
    assert theme.is_dark() == (mode == "dark")
    image = window.grab().toImage()
    for part in (section.header, section.body):
        assert drawn_contrast(image, region(window, part)) >= 4.5, part.accessibleName()
