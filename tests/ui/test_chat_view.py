"""The conversation view, offscreen: layout while and after streaming, Markdown as rendered by
Qt, copy and links, keyboard, reading width, accessible names and colours in light and dark.
(Real replies from the model: test_chat_view_model.py.)"""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QObject, QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPalette, QTextTable
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QWidget

from desktop.core.store.chats import Message
from desktop.ui import theme
from desktop.ui.chat_view import READING_WIDTH, ChatView
from desktop.ui.markdown import MarkdownRenderer

SOURCES = [{"n": 1, "path": "/tmp/notes.pdf", "location": "notes.pdf, page 3", "text": "x"}]
LONG = "\n\n".join([
    "Intro paragraph with **bold** text.",
    "## A heading",
    "A paragraph right under the heading.",
    "| Name | Count |\n|:-----|------:|\n| apples | 3 |\n| pears | 12 |",
    "> quoted advice",
    "```python\nprint('" + "x" * 400 + "')\n```",
    *[f"Paragraph {i} of the long answer, with enough words to wrap." for i in range(12)],
])


def _message(role: str, content: str, mid: int = 1, **fields: object) -> Message:
    return Message(mid, 1, role, content, "done", time.time(), **fields)  # type: ignore[arg-type]


@pytest.fixture
def view(qtbot):  # noqa: ANN001, ANN201
    widget = ChatView()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture(params=["light", "dark"])
def themed(request):  # noqa: ANN001, ANN201
    theme.apply_theme(request.param)
    yield request.param
    theme.apply_theme("system")


def _rect_in(view: ChatView, widget: QWidget) -> tuple[int, int]:
    top = widget.mapTo(view.container, QPoint(0, 0)).y()
    return top, top + widget.height()


def test_stream_end_leaves_the_body_above_sources_and_buttons(qtbot, view: ChatView) -> None:  # noqa: ANN001
    view.set_messages([_message("user", "Question?")])
    view.begin_stream(Message(0, 1, "assistant", "", "streaming", time.time()))
    reply = view.widgets[-1]
    assert reply.progress_row.isVisibleTo(view)  # something shows before the first word
    # Mid-stream: a heading arrives after a paragraph; they must stay apart.
    view.append("Intro paragraph.\n\n## A heading\n\nThe paragraph under it")
    qtbot.waitUntil(lambda: "heading" in reply.body.toPlainText())
    blocks = []
    block = reply.body.document().begin()
    while block.isValid():
        blocks.append(block.text().strip())
        block = block.next()
    assert "A heading" in blocks and "Intro paragraph." in blocks, blocks
    view.append(LONG)
    qtbot.waitUntil(lambda: "Paragraph 11" in reply.body.toPlainText())
    final = _message("assistant", "Intro paragraph.\n\n## A heading\n\nThe paragraph under it"
                     + LONG, mid=2, sources_json='[{"n": 1, "location": "notes.pdf, page 3"}]',
                     completion_tokens=200, tokens_per_s=30.0, ttft_s=0.4)
    view.end_stream(final)
    # No scrolling, no waiting: the sizes are right as soon as the stream has ended.
    _, body_bottom = _rect_in(view, reply.body)
    sources_top, sources_bottom = _rect_in(view, reply.sources_label)
    buttons_top, _ = _rect_in(view, reply.copy_button)
    assert reply.sources_label.isVisible() and "notes.pdf, page 3" in reply.sources_label.text()
    assert body_bottom <= sources_top and sources_bottom <= buttons_top
    assert reply.body.height() >= reply.body.document().size().height()
    assert reply.layout().geometry().height() <= reply.height()
    assert "0.40 s to first token" in reply.meta.text() and "200 tokens" in reply.meta.text()


def test_markdown_tables_quotes_newlines_code_and_links(qtbot, view: ChatView) -> None:  # noqa: ANN001
    html = MarkdownRenderer().render("| a | b |\n|:--|--:|\n| 1 | 2 |\n\n> q\n\nline one\nline two")
    assert 'border="1"' in html and '<th align="left"' in html and '<th align="right"' in html
    assert '<td width="4" bgcolor=' in html  # the quote's bar
    assert "line one<br" in html  # a single newline is kept
    view.set_messages([_message("assistant", LONG + "\n\nSee [the docs](https://example.org/x).")])
    body = view.widgets[0].body
    document = body.document()
    tables = [f for f in document.rootFrame().childFrames() if isinstance(f, QTextTable)]
    bordered = [t for t in tables if t.format().border() >= 1]
    assert bordered, "the Markdown table has a border"
    # The long code line is not cut: the document is wider and the body scrolls sideways.
    assert document.size().width() > body.viewport().width()
    assert body.horizontalScrollBar().maximum() > 0
    assert body.height() >= document.size().height() + body.horizontalScrollBar().height() - 2
    # A link opens in the system browser (QDesktopServices, caught here by a URL handler).
    opened: list[str] = []

    class Catcher(QObject):
        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            opened.append(url.toString())

    catcher = Catcher()
    QDesktopServices.setUrlHandler("https", catcher, "open")
    try:
        assert "https://example.org/x" in document.toHtml()
        body.anchorClicked.emit(QUrl("https://example.org/x"))
    finally:
        QDesktopServices.unsetUrlHandler("https")
    assert opened == ["https://example.org/x"]


def test_copy_says_copied_and_copies_the_answer(qtbot, view: ChatView) -> None:  # noqa: ANN001
    answer = "The answer is **42**.\n\n```\ncode here\n```"
    view.set_messages([_message("user", "Q"), _message("assistant", answer, mid=2)])
    reply = view.widgets[1]
    qtbot.mouseClick(reply.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == answer
    assert reply.copy_button.text() == "Copied"
    qtbot.waitUntil(lambda: reply.copy_button.text() == "Copy", timeout=5000)
    # The code block's own Copy link copies the code and says "Copied" too.
    reply.body.anchorClicked.emit(QUrl("copy:0"))
    assert QGuiApplication.clipboard().text() == "code here\n"
    assert ">Copied<" in reply.body.toHtml()


def test_every_user_message_has_edit_and_versions_show(qtbot, view: ChatView) -> None:  # noqa: ANN001
    messages = [_message("user", "first", 1), _message("assistant", "a1", 2),
                _message("user", "second", 3, versions=[3, 5]),
                _message("assistant", "a2", 6, versions=[4, 6])]
    view.set_messages(messages)
    users = [w for w in view.widgets if w.message.role == "user"]
    assert all(w.edit_button.isVisibleTo(view) for w in users)
    assert view.widgets[-1].version_label.text() == "2/2"
    assert view.widgets[-1].regenerate_button.isVisibleTo(view)
    edits: list[tuple[int, str]] = []
    view.edit_submitted.connect(lambda mid, text: edits.append((mid, text)))
    first = view.widgets[0]
    qtbot.mouseClick(first.edit_button, Qt.MouseButton.LeftButton)
    assert first.editing and first.editor.toPlainText() == "first"
    first.editor.setPlainText("first, edited")
    qtbot.mouseClick(first.edit_send, Qt.MouseButton.LeftButton)
    assert edits == [(1, "first, edited")]
    versions: list[int] = []
    view.version_requested.connect(versions.append)
    qtbot.mouseClick(view.widgets[-1].previous_version, Qt.MouseButton.LeftButton)
    assert versions == [4]
    # While a reply is written nothing that starts another can be pressed.
    view.set_busy(True)
    assert not users[0].edit_button.isEnabled() and not view.widgets[-1].previous_version.isEnabled()


def test_conversation_is_one_tab_stop_with_arrow_keys_inside(qtbot, view: ChatView) -> None:  # noqa: ANN001
    view.set_messages([_message("user", "Q", 1), _message("assistant", "A", 2)])
    editing = {b for w in view.widgets for b in (w.edit_send, w.edit_cancel)}  # shown to edit
    buttons = [b for b in view.findChildren(QPushButton) if b not in editing]
    assert buttons and all(b.focusPolicy() == Qt.FocusPolicy.NoFocus for b in buttons)
    assert all(w.body.focusPolicy() == Qt.FocusPolicy.ClickFocus for w in view.widgets)
    view.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(view.hasFocus)
    widget, action = view.focused_widget()
    assert widget is view.widgets[-1] and widget.keyboard_focus and action is None
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.focused_widget()[0] is view.widgets[0]
    qtbot.keyClick(view, Qt.Key.Key_Right)
    widget, action = view.focused_widget()
    assert action is widget.copy_button
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert QGuiApplication.clipboard().text() == "Q"
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.focused_widget()[1] is view.widgets[0].edit_button
    # The ring is drawn: pixels in the highlight colour around the chosen button.
    image = view.widgets[0].grab().toImage()
    ring = theme.readable(QApplication.palette().color(QPalette.ColorRole.Highlight),
                          view.widgets[0].background(), 3.0)
    button = view.widgets[0].edit_button
    x, y = button.x() - 1, button.y() + button.height() // 2
    assert theme.contrast(image.pixelColor(x, y), view.widgets[0].background()) >= 3.0
    assert theme.contrast(ring, view.widgets[0].background()) >= 3.0


def test_reading_width_on_a_large_window(qtbot, view: ChatView) -> None:  # noqa: ANN001
    view.resize(1600, 1000)
    view.set_messages([_message("assistant", "word " * 400)])
    qtbot.waitUntil(lambda: view.column_widget.width() > 0)
    assert view.column_widget.width() <= READING_WIDTH
    left = view.column_widget.x()
    right = view.container.width() - left - view.column_widget.width()
    assert abs(left - right) <= 2 and left > 300  # centred


def test_notices_on_the_message_and_accessible_names(qtbot, view: ChatView, themed: str) -> None:  # noqa: ANN001
    messages = [
        _message("user", "Q", 1),
        _message("assistant", "Cut off he", 2, completion_tokens=None),
        _message("user", "Q2", 3),
        _message("assistant", "Limited", 4, completion_tokens=12, stop_reason="length",
                 versions=[4, 7]),
    ]
    messages[1].state = "interrupted"
    view.set_messages(messages)
    limited = view.widgets[-1]
    assert "token limit (12 tokens)" in limited.notice.text()
    assert limited.continue_button.isVisibleTo(view)
    assert "Cut off when Hearth closed" in view.widgets[1].notice.text()
    assert view.widgets[1].notice.isVisibleTo(view)  # on the message itself, not at the top
    for widget in view.findChildren(QWidget):
        if isinstance(widget, (QPushButton, QLabel)) and widget.isVisibleTo(view):
            assert widget.accessibleName(), widget
    assert limited.accessibleName().startswith("Assistant") and "version 1 of 2" in \
        limited.accessibleName()
    # Contrast of every text colour in this theme: stats, notices, buttons, sources.
    for widget in view.widgets:
        back = widget.background()
        for label in (widget.meta, widget.notice, widget.who, widget.version_label):
            colour = label.palette().color(QPalette.ColorRole.WindowText)
            assert theme.contrast(colour, back) >= 4.5, (themed, label.accessibleName())
        for button in (widget.copy_button, widget.regenerate_button, widget.continue_button):
            colour = button.palette().color(QPalette.ColorRole.ButtonText)
            assert theme.contrast(colour, back) >= 4.5, (themed, button.text())
        for name in ("muted", "text"):
            from PySide6.QtGui import QColor

            assert theme.contrast(QColor(getattr(widget.colors, name)), back) >= 4.5
    # And as drawn: the stats line's pixels stand out from the background.
    meta = limited.meta
    image = meta.grab().toImage()
    darkest = max(theme.contrast(image.pixelColor(x, y), limited.background())
                  for x in range(0, min(image.width(), 120)) for y in range(image.height()))
    assert darkest >= 4.5, themed


def test_progress_shows_in_the_reply_placeholder(qtbot, view: ChatView) -> None:  # noqa: ANN001
    view.begin_stream(Message(0, 1, "assistant", "", "streaming", time.time()))
    view.show_progress("load", 42, 100)
    placeholder = view.widgets[-1]
    assert placeholder.progress_label.text() == "Loading the model… 42%"
    view.show_progress("prompt", 1024, 3000)
    assert "1,024 of 3,000 tokens" in placeholder.progress_label.text()
    assert placeholder.progress_bar.maximum() == 3000 and placeholder.progress_bar.value() == 1024
    view.append("First words")
    qtbot.waitUntil(lambda: not placeholder.progress_row.isVisibleTo(view))
    assert "First words" in placeholder.body.toPlainText()


def test_colours_follow_a_theme_switch(qtbot, view: ChatView) -> None:  # noqa: ANN001
    theme.apply_theme("light")
    try:
        view.set_messages([_message("user", "Q", 1),
                           _message("assistant", "| a |\n|---|\n| 1 |\n\n> q", 2,
                                    completion_tokens=3, tokens_per_s=9.0)])
        reply = view.widgets[1]
        assert not reply.colors.dark
        theme.apply_theme("dark")
        qtbot.waitUntil(lambda: reply.colors.dark)
        back = reply.background()
        assert theme.luminance(back) < 0.4
        for label in (reply.meta, reply.who):
            colour = label.palette().color(QPalette.ColorRole.WindowText)
            assert theme.contrast(colour, back) >= 4.5
        assert reply.colors.bar in reply.body.toHtml() or "bgcolor" in reply.body.toHtml()
    finally:
        theme.apply_theme("system")
