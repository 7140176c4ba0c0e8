"""The conversation view: one widget per message; streaming re-renders only the last one.

Re-rendering the whole conversation per token took 27 s for 3,000 tokens in a measurement
(DESIGN 7). Here pieces are appended to a buffer and the last message's Markdown is
re-rendered at most RENDER_HZ times a second, then once fully at the end.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.core.store.chats import Message
from desktop.ui.markdown import MarkdownRenderer

RENDER_HZ = 15
STATE_NOTES = {
    "streaming": "writing…",
    "stopped": "stopped",
    "failed": "failed",
    "interrupted": "interrupted — the app closed while this was being written",
}


def is_dark() -> bool:
    app = QGuiApplication.instance()
    if app is None:
        return False
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark  # type: ignore[attr-defined]


def _stable_split(text: str, start: int = 0) -> int:
    """Index after the last paragraph break outside a fenced code block, scanning from
    `start` (an earlier split point, so never inside a fence): each tick reads only new text."""
    split = start
    in_fence = False
    position = start
    for line in text[start:].splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        position += len(line)
        if not in_fence and not line.strip() and position < len(text):
            split = position
    return split


class MessageBody(QTextBrowser):
    """A read-only rich text view whose height follows its content (no inner scrolling)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.viewport().setAutoFillBackground(False)

    def _fit(self) -> None:
        height = int(self.document().size().height()) + 6
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().resizeEvent(event)
        self.document().setTextWidth(self.viewport().width())
        self._fit()


class MessageWidget(QFrame):
    copy_requested = Signal(str)
    source_requested = Signal(dict)
    regenerate_requested = Signal()
    continue_requested = Signal()
    edit_requested = Signal(str)

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.renderer = MarkdownRenderer(dark=is_dark())
        self.setObjectName("message-" + message.role)
        self.setFrameShape(QFrame.Shape.StyledPanel if message.role == "user"
                           else QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setObjectName("message-header")
        layout.addWidget(self.header)
        self.body = MessageBody(self)
        self.body.anchorClicked.connect(self._anchor)
        layout.addWidget(self.body)
        self.sources_label = QLabel()
        self.sources_label.setWordWrap(True)
        self.sources_label.setTextFormat(Qt.TextFormat.RichText)
        self.sources_label.linkActivated.connect(self._source_clicked)
        self.sources_label.hide()
        layout.addWidget(self.sources_label)
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setFlat(True)
        self.copy_button.clicked.connect(lambda: self.copy_requested.emit(self.message.content))
        actions.addWidget(self.copy_button)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setFlat(True)
        self.regenerate_button.clicked.connect(self.regenerate_requested.emit)
        self.edit_button = QPushButton("Edit")
        self.edit_button.setFlat(True)
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self.message.content))
        self.continue_button = QPushButton("Continue")
        self.continue_button.setFlat(True)
        self.continue_button.setToolTip("Go on writing this reply from where it stopped")
        self.continue_button.clicked.connect(self.continue_requested.emit)
        actions.addWidget(self.regenerate_button)
        actions.addWidget(self.continue_button)
        actions.addWidget(self.edit_button)
        actions.addStretch(1)
        layout.addLayout(actions)
        self.set_last(False)
        self.update_message(message)

    def set_last(self, last: bool) -> None:
        self.regenerate_button.setVisible(last and self.message.role == "assistant"
                                          and self.message.state != "streaming")
        self.edit_button.setVisible(last and self.message.role == "user")
        unfinished = self.message.state in ("interrupted", "stopped", "failed") or \
            self.message.stop_reason == "length"
        self.continue_button.setVisible(last and self.message.role == "assistant" and unfinished
                                        and bool(self.message.content))

    def update_message(self, message: Message) -> None:
        self.message = message
        self.header.setText(self._header_html())
        self.render_text(message.content)
        self._show_sources()

    def _show_sources(self) -> None:
        sources = self.message.sources
        if self.message.role == "assistant" and sources:
            links = " &nbsp; ".join(
                f'<a href="source:{i}">[{s.get("n", i + 1)}] {html.escape(s.get("location", ""))}</a>'
                for i, s in enumerate(sources))
            self.sources_label.setText(f'<span style="color:#888">Sources:</span> {links}')
            self.sources_label.show()
        elif self.message.role == "user" and (self.message.context or "").startswith(
                "No passage in my attached documents matched"):
            self.sources_label.setText('<span style="color:#888">No passage in the attached '
                                       "documents matched this question.</span>")
            self.sources_label.show()
        else:
            self.sources_label.hide()

    def _source_clicked(self, link: str) -> None:
        index = int(link.split(":", 1)[1])
        sources = self.message.sources
        if 0 <= index < len(sources):
            self.source_requested.emit(sources[index])

    def render_text(self, text: str) -> None:
        """Full render (a finished message)."""
        self.message.content = text
        self._stable_chars = 0
        self._tail_at = 0
        if self.message.role == "user":
            self.body.setPlainText(text)
        else:
            self.body.setHtml(self.renderer.render(text))

    def render_streaming(self, text: str) -> None:
        """Incremental render while a reply streams: blocks that can no longer change (before
        the last blank line outside a code fence) are rendered once and appended; only the
        unfinished tail is re-rendered. Re-rendering the whole reply each time grew with its
        length (29 ms at 5 KB here); this stays proportional to the newest paragraph. The
        final full render in end_stream fixes anything the piecewise Markdown got wrong."""
        self.message.content = text
        split = _stable_split(text, self._stable_chars)
        cursor = QTextCursor(self.body.document())
        cursor.beginEditBlock()
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        if split > self._stable_chars:
            cursor.insertHtml(self.renderer.render(text[self._stable_chars:split]))
            self._stable_chars = split
            self._tail_at = cursor.position()
        tail = text[self._stable_chars:]
        if tail.strip():
            cursor.insertHtml(self.renderer.render(tail))
        cursor.endEditBlock()

    def _header_html(self) -> str:
        m = self.message
        who = "You" if m.role == "user" else "Assistant"
        stamp = time.strftime("%H:%M", time.localtime(m.created_at))
        bits = [f"<b>{who}</b>", f'<span style="color:#888">{stamp}</span>']
        if m.tokens_per_s:
            bits.append(f'<span style="color:#888">{m.completion_tokens} tokens · '
                        f"{m.tokens_per_s:.1f} tok/s</span>")
        note = STATE_NOTES.get(m.state)
        if note:
            color = "#c0392b" if m.state in ("failed", "interrupted") else "#888"
            bits.append(f'<span style="color:{color}">{note}</span>')
        if m.error:
            bits.append(f'<span style="color:#c0392b">{m.error}</span>')
        return " &nbsp; ".join(bits)

    def _anchor(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            index = int(url.path() or 0)
            if 0 <= index < len(self.renderer.code_blocks):
                self.copy_requested.emit(self.renderer.code_blocks[index])


class ChatView(QScrollArea):
    source_requested = Signal(dict)
    regenerate_requested = Signal()
    continue_requested = Signal()
    edit_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.container = QWidget()
        self.column = QVBoxLayout(self.container)
        self.column.setContentsMargins(16, 12, 16, 12)
        self.column.setSpacing(8)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color:#888")
        self.notice.hide()
        self.column.addWidget(self.notice)
        self.column.addStretch(1)
        self.setWidget(self.container)
        self.widgets: list[MessageWidget] = []
        self._buffer: list[str] = []
        self._dirty = False
        self._stream_text = ""
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // RENDER_HZ)
        self._timer.timeout.connect(self._flush)
        self.verticalScrollBar().rangeChanged.connect(self._follow)
        self._stick_to_bottom = True

    # --- content ---------------------------------------------------------------------
    def clear(self) -> None:
        for widget in self.widgets:
            widget.setParent(None)
            widget.deleteLater()
        self.widgets = []
        self.notice.hide()

    def set_messages(self, messages: list[Message]) -> None:
        self.clear()
        for message in messages:
            self.add_message(message)
        self._stick_to_bottom = True

    def add_message(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message, self.container)
        widget.copy_requested.connect(lambda text: QGuiApplication.clipboard().setText(text))
        widget.regenerate_requested.connect(self.regenerate_requested.emit)
        widget.source_requested.connect(self.source_requested.emit)
        widget.continue_requested.connect(self.continue_requested.emit)
        widget.edit_requested.connect(self.edit_requested.emit)
        if self.widgets:
            self.widgets[-1].set_last(False)
        self.column.insertWidget(self.column.count() - 1, widget)
        self.widgets.append(widget)
        widget.set_last(True)
        return widget

    def set_notice(self, text: str | None) -> None:
        self.notice.setText(text or "")
        self.notice.setVisible(bool(text))

    # --- streaming -----------------------------------------------------------------
    def begin_stream(self, message: Message) -> None:
        self._stream_text = ""
        self._stick_to_bottom = True
        self.add_message(message)
        self._timer.start()

    def resume_stream(self) -> None:
        """Stream into the last message (a reply being continued) instead of a new one."""
        widget = self.widgets[-1]
        self._stream_text = widget.message.content
        widget.message.state = "streaming"
        widget.update_message(widget.message)
        widget.set_last(True)
        self._stick_to_bottom = True
        self._timer.start()

    def append(self, piece: str) -> None:
        """Called per streamed piece: O(1), the render happens on the timer."""
        self._buffer.append(piece)
        self._dirty = True

    def _flush(self) -> None:
        if not self._dirty or not self.widgets:
            return
        self._stream_text += "".join(self._buffer)
        self._buffer.clear()
        self._dirty = False
        self.widgets[-1].render_streaming(self._stream_text)

    def end_stream(self, message: Message | None) -> None:
        self._timer.stop()
        self._flush()
        if message is not None and self.widgets:
            self.widgets[-1].update_message(message)
            self.widgets[-1].set_last(True)

    @property
    def streaming_text(self) -> str:
        return self._stream_text + "".join(self._buffer)

    def _follow(self, _min: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(maximum)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        super().scrollContentsBy(dx, dy)
        bar = self.verticalScrollBar()
        self._stick_to_bottom = bar.value() >= bar.maximum() - 4
