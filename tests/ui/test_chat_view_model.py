"""The conversation in the real window with the real model: edit any user message, versions
on regenerate and edit, switching versions, and progress before the first word."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from tests.ui.window_fixtures import open_window, prepare  # noqa: F401 - pytest fixture


def _done(window) -> bool:  # noqa: ANN001
    return not window.generating


def test_edit_any_message_and_versions_in_the_window(qtbot, open_window, data_dir: Path,  # noqa: ANN001, F811
                                                     gemma_path: Path) -> None:
    prepare(data_dir, gemma_path, max_tokens=4)
    window = open_window(data_dir, (1000, 700))
    progress: list[tuple[str, int, int]] = []
    window.progress_arrived.connect(lambda *event: progress.append(event))
    window.send("Name a fruit.")
    qtbot.waitUntil(lambda: _done(window), timeout=120_000)
    assert ("load", 100, 100) in progress  # the model load was reported, to the end
    window.send("And a vegetable?")
    qtbot.waitUntil(lambda: _done(window), timeout=60_000)
    view = window.chat_view
    assert [w.message.role for w in view.widgets] == ["user", "assistant"] * 2
    first_reply = view.widgets[1].message.id

    # Edit the FIRST user message (not the last one): its Edit button is there.
    first = view.widgets[0]
    assert first.edit_button.isVisibleTo(window)
    qtbot.mouseClick(first.edit_button, Qt.MouseButton.LeftButton)
    first.editor.setPlainText("Name a colour.")
    qtbot.keyClick(first.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _done(window), timeout=60_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    assert [w.message.content for w in view.widgets][0] == "Name a colour."
    assert len(view.widgets) == 2
    edited = view.widgets[0]
    assert edited.version_label.text() == "2/2" and edited.previous_version.isVisibleTo(window)

    # Back to version 1: the old question with both of its turns.
    qtbot.mouseClick(edited.previous_version, Qt.MouseButton.LeftButton)
    assert [w.message.content for w in view.widgets][:1] == ["Name a fruit."]
    assert len(view.widgets) == 4 and view.widgets[1].message.id == first_reply
    assert view.widgets[0].version_label.text() == "1/2"

    # Regenerate the last reply: a second version; the first stays one click away.
    last = view.widgets[-1].message.id
    qtbot.mouseClick(view.widgets[-1].regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _done(window), timeout=60_000)
    reply = view.widgets[-1]
    assert reply.message.id != last and reply.version_label.text() == "2/2"
    qtbot.mouseClick(reply.previous_version, Qt.MouseButton.LeftButton)
    assert view.widgets[-1].message.id == last
    # The window reopened on this chat shows the same branch (stored, not only drawn).
    ids = [w.message.id for w in view.widgets]
    window.open_conversation(window.current_id)
    assert [w.message.id for w in view.widgets] == ids


def test_prompt_reading_progress_shows_in_the_placeholder(qtbot, open_window, data_dir: Path,  # noqa: ANN001, F811
                                                         gemma_path: Path) -> None:
    prepare(data_dir, gemma_path, max_tokens=2)
    window = open_window(data_dir, (1000, 700))
    shown: list[str] = []
    window.progress_arrived.connect(
        lambda *_: shown.append(window.chat_view.widgets[-1].progress_label.text()))
    window.send("Summarise: " + "the quick brown fox jumps over the lazy dog. " * 120)
    qtbot.waitUntil(lambda: _done(window), timeout=120_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    assert any(text.startswith("Loading the model…") for text in shown)
    assert any(text.startswith("Reading the conversation…") and "tokens" in text
               for text in shown), shown
