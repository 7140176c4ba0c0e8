"""One message of the conversation: its text (Markdown for replies), what it cost, what became
of it (stopped, cut off, at the token limit) and its actions (versions ‹ 2/3 ›, Copy, Edit,
Regenerate, Continue).

The buttons are not Tab stops: the conversation is one stop and arrow keys move inside it
(chat_view.ChatView), so Tab goes from the conversation to the message box in one step.
Every colour comes from the palette, checked for 4.5:1 with theme.readable().
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QEvent, QRect, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QKeyEvent,
    QPainter,
    QPalette,
    QPen,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.core.store.chats import Message
from desktop.ui import theme
from desktop.ui.markdown import MarkdownColors, MarkdownRenderer, _mix
from desktop.ui.thinking_section import ThinkingSection

COPIED_MS = 1500  # how long "Copied" shows before the button says "Copy" again
EXTERNAL_SCHEMES = ("http", "https", "mailto", "ftp")


def stable_split(text: str, start: int = 0) -> int:
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


def stats_text(message: Message) -> str:
    """What a reply cost: tokens (the whole reply, Continue included), speed, first token."""
    bits = []
    if message.completion_tokens:
        bits.append(f"{message.completion_tokens:,} tokens")
    if message.tokens_per_s:
        bits.append(f"{message.tokens_per_s:.1f} tok/s")
    if message.ttft_s is not None and message.completion_tokens:
        bits.append(f"{message.ttft_s:.2f} s to first token")
    drafts = drafting_text(message)
    if drafts:
        bits.append(drafts)
    return " · ".join(bits)


DRAFTING_TIP = ("Speculative decoding: the model checked several guessed tokens in one step, "
                "which is faster; the reply is exactly what it would have been without.")


def drafting_text(message: Message) -> str:
    """"drafts 1.8x, 73% accepted" when tokens were drafted for this reply; "" when drafting
    was off or guessed nothing (nothing to say then)."""
    spec = message.spec
    drafted = int(spec.get("drafted") or 0)
    if not drafted:
        return ""
    accepted = round(100 * int(spec.get("accepted") or 0) / drafted)
    speedup = spec.get("speedup")
    text = (f"drafts {float(speedup):.1f}x, {accepted}% accepted" if speedup is not None
            else f"{accepted}% of drafts accepted")
    return text.replace(" ", "\u00a0")  # a narrow window wraps before it, never inside


def outcome(message: Message) -> tuple[str, str | None]:
    """A sentence on how the reply ended, and its tone ("" when it simply finished)."""
    if message.role != "assistant":
        return "", None
    if message.state == "interrupted":
        return ("Cut off when Hearth closed. Continue writes on from where it stopped; "
                "Regenerate writes a new version."), "warning"
    if message.state == "failed":
        return (message.error or "This reply failed."), "error"
    if message.state == "stopped":
        return "Stopped before the end. Continue writes on from where it stopped.", None
    if message.state == "done" and message.stop_reason == "length":
        count = f" ({message.completion_tokens:,} tokens)" if message.completion_tokens else ""
        return (f"Stopped at the token limit{count}. Continue writes more; the limit is in "
                "Chat settings."), "warning"
    return "", None


class MessageBody(QTextBrowser):
    """Read-only rich text whose height follows its content. Prose wraps; a code line longer
    than the width widens the document and a horizontal scroll bar appears (nothing is cut)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        # Click to select and Ctrl+C, but not a Tab stop (the conversation is one stop).
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.viewport().setAutoFillBackground(False)
        # Text lines up with the author line and the buttons (Qt's default margin is 4 px).
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(self.fit)
        self.horizontalScrollBar().rangeChanged.connect(self.fit)
        self.setFixedHeight(24)

    def wanted_height(self) -> int:
        height = int(self.document().size().height() + 0.999) + 2 * self.frameWidth()
        bar = self.horizontalScrollBar()
        if bar.maximum() > 0:
            height += bar.sizeHint().height()
        return max(height, 16)

    def fit(self, *_: object) -> None:
        height = self.wanted_height()
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().resizeEvent(event)
        self.fit()

    def wheelEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        # Vertical wheel scrolls the conversation, never this (it has nothing to scroll).
        if abs(event.angleDelta().y()) >= abs(event.angleDelta().x()):
            event.ignore()
            return
        super().wheelEvent(event)


class EditBox(QPlainTextEdit):
    """The in-place editor of a user message: Ctrl+Enter sends, Esc cancels."""

    submitted = Signal()
    cancelled = Signal()

    def event(self, event: QEvent) -> bool:
        # Esc is the window's Stop shortcut: while editing it cancels the edit instead.
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and event.key() == Qt.Key.Key_Escape:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


def _flat(text: str, name: str, tip: str = "") -> QPushButton:
    button = QPushButton(text)
    button.setFlat(True)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # reached with arrow keys, see ChatView
    button.setAccessibleName(name)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    if tip:
        button.setToolTip(tip)
    _fit_width(button)
    return button


def _fit_width(button: QPushButton) -> None:
    """As wide as the text (the style's 80 px minimum spread the action row out)."""
    button.setFixedWidth(button.fontMetrics().horizontalAdvance(button.text()) + 18)


class MessageWidget(QFrame):
    copy_requested = Signal(str)
    source_requested = Signal(dict)
    regenerate_requested = Signal(int)  # the reply's id
    continue_requested = Signal()
    edit_submitted = Signal(int, str)  # the user message's id, the new text
    version_requested = Signal(int)  # the id of the version to show

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.last = False
        self.busy = False
        self.keyboard_focus = False
        self.focused_action: QPushButton | None = None
        self.renderer = MarkdownRenderer()
        self.setObjectName("message-" + message.role)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.setSpacing(3)

        head = QHBoxLayout()
        head.setSpacing(8)
        self.who = QLabel("You" if message.role == "user" else "Assistant")
        font = self.who.font()
        font.setBold(True)
        self.who.setFont(font)
        self.who.setAccessibleName("Author")
        self.meta = QLabel()
        self.meta.setAccessibleName("Message details")
        self.meta.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # In a narrow window the stats (drafting's last) go on a second line, never cut off.
        self.meta.setWordWrap(True)
        self.header = self.meta  # the older name: the line with the time and the stats
        head.addWidget(self.who, 0, Qt.AlignmentFlag.AlignTop)  # beside a wrapped meta line
        head.addWidget(self.meta, 1)
        layout.addLayout(head)

        self.progress_row = QWidget()
        progress = QHBoxLayout(self.progress_row)
        progress.setContentsMargins(0, 2, 0, 2)
        self.progress_label = QLabel("Waiting for the model…")
        self.progress_label.setAccessibleName("Reply progress")
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Reply progress")
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setRange(0, 0)  # busy until the worker says how far it is
        progress.addWidget(self.progress_label)
        progress.addWidget(self.progress_bar)
        progress.addStretch(1)
        self.progress_row.hide()
        layout.addWidget(self.progress_row)

        # A reasoning model's thinking: collapsed, above the answer (thinking_section.py).
        self.thinking = ThinkingSection(self)
        self.thinking.setAccessibleName("Thinking")
        self.thinking.expanded_changed.connect(self._thinking_toggled)
        self.thinking.hide()
        layout.addWidget(self.thinking)

        self.body = MessageBody(self)
        self.body.setAccessibleName("Message text")
        self.body.anchorClicked.connect(self._anchor)
        layout.addWidget(self.body)

        self.editor = EditBox()
        self.editor.setAccessibleName("Edit your message")
        self.editor.setTabChangesFocus(True)
        self.editor.submitted.connect(self._submit_edit)
        self.editor.cancelled.connect(self.cancel_edit)
        self.edit_send = QPushButton("Send")
        self.edit_send.setAccessibleName("Send the edited message")
        self.edit_send.setToolTip("Ctrl+Enter: send it as a new version of your message")
        self.edit_send.clicked.connect(self._submit_edit)
        self.edit_cancel = QPushButton("Cancel")
        self.edit_cancel.setAccessibleName("Cancel editing")
        self.edit_cancel.clicked.connect(self.cancel_edit)
        self.edit_box = QWidget()
        edit_layout = QVBoxLayout(self.edit_box)
        edit_layout.setContentsMargins(0, 0, 0, 0)
        edit_buttons = QHBoxLayout()
        edit_buttons.addStretch(1)
        edit_buttons.addWidget(self.edit_cancel)
        edit_buttons.addWidget(self.edit_send)
        edit_layout.addWidget(self.editor)
        edit_layout.addLayout(edit_buttons)
        self.edit_box.hide()
        layout.addWidget(self.edit_box)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("What happened to this reply")
        self.notice.hide()
        layout.addWidget(self.notice)

        self.sources_label = QLabel()
        self.sources_label.setWordWrap(True)
        self.sources_label.setTextFormat(Qt.TextFormat.RichText)
        self.sources_label.setAccessibleName("Sources")
        self.sources_label.linkActivated.connect(self._source_clicked)
        self.sources_label.hide()
        layout.addWidget(self.sources_label)

        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        actions.setSpacing(2)
        self.previous_version = _flat("‹", "Previous version")
        self.previous_version.clicked.connect(lambda: self._step_version(-1))
        self.version_label = QLabel()
        self.version_label.setAccessibleName("Version")
        self.next_version = _flat("›", "Next version")
        self.next_version.clicked.connect(lambda: self._step_version(1))
        mine = message.role == "user"
        self.copy_button = _flat("Copy", "Copy your message" if mine else "Copy the reply")
        self.copy_button.clicked.connect(self.copy_text)
        self.edit_button = _flat("Edit", "Edit this message",
                                 "Edit and send again: a new version, the old one is kept")
        self.edit_button.clicked.connect(self.start_edit)
        self.regenerate_button = _flat("Regenerate", "Regenerate this reply",
                                       "Write a new version of this reply (the old one is kept)")
        self.regenerate_button.clicked.connect(
            lambda: self.regenerate_requested.emit(self.message.id))
        self.continue_button = _flat("Continue", "Continue this reply",
                                     "Go on writing this reply from where it stopped")
        self.continue_button.clicked.connect(self.continue_requested.emit)
        for widget in (self.previous_version, self.version_label, self.next_version,
                       self.copy_button, self.edit_button, self.regenerate_button,
                       self.continue_button):
            actions.addWidget(widget)
        actions.addStretch(1)
        layout.addLayout(actions)
        self._copy_timer = QTimer(self)
        self._copy_timer.setSingleShot(True)
        self._copy_timer.setInterval(COPIED_MS)
        self._copy_timer.timeout.connect(self._copy_reset)
        self._stable_chars = 0
        self._tail_at = 0
        self._colors_for: tuple[int, int] | None = None
        self.apply_colors()
        self.update_message(message)

    # --- colours -----------------------------------------------------------------------
    def background(self) -> QColor:
        palette = QApplication.palette()
        window = palette.color(QPalette.ColorRole.Window)
        if self.message.role != "user":
            return window
        # Your messages sit on a light tint of the text colour: a bubble in both themes.
        return _mix(palette.color(QPalette.ColorRole.WindowText), window,
                    0.88 if theme.is_dark(palette) else 0.93)

    def apply_colors(self) -> None:
        """Palette colours for this message's background, each at least 4.5:1 (text) on it."""
        app = QApplication.palette()
        self._colors_for = (app.color(QPalette.ColorRole.Window).rgb(),
                            app.color(QPalette.ColorRole.WindowText).rgb())
        back = self.background()
        text = theme.readable(app.color(QPalette.ColorRole.WindowText), back)
        self.colors = MarkdownColors.from_palette(app, back)
        palette = QPalette(app)
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            palette.setColor(group, QPalette.ColorRole.Window, back)
            palette.setColor(group, QPalette.ColorRole.WindowText, text)
            palette.setColor(group, QPalette.ColorRole.Text, text)
            palette.setColor(group, QPalette.ColorRole.ButtonText, text)
            palette.setColor(group, QPalette.ColorRole.Base, back)
            palette.setColor(group, QPalette.ColorRole.Link,
                             theme.readable(app.color(QPalette.ColorRole.Link), back))
        self.setPalette(palette)
        muted = QPalette(palette)
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            muted.setColor(group, QPalette.ColorRole.WindowText, QColor(self.colors.muted))
        # A widget style sheet too: under the app's style sheet, a theme switch re-polishes
        # labels and Qt puts back the palette they had before it (light grey on dark).
        for label in (self.meta, self.version_label):
            label.setPalette(muted)
            label.setStyleSheet(f"color: {QColor(self.colors.muted).name()};")
        self.thinking.apply_colors(palette, QColor(self.colors.muted),
                                   theme.readable(QColor(self.colors.border), back, 3.0))
        self.renderer.colors = self.colors
        self._set_notice_tone()

    def _set_notice_tone(self) -> None:
        _, tone_name = outcome(self.message)
        palette = QPalette(self.palette())
        color = (theme.readable(theme.TONES[tone_name], self.background()) if tone_name
                 else palette.color(QPalette.ColorRole.WindowText))
        palette.setColor(QPalette.ColorRole.WindowText, color)
        self.notice.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange,
                            QEvent.Type.StyleChange):
            self.follow_palette()

    def follow_palette(self) -> None:
        """After a theme switch: colours and the Markdown (its colours are inline) follow.
        This widget's own palette is set in full, so Qt does not tell it: the view does."""
        app = QApplication.palette()
        key = (app.color(QPalette.ColorRole.Window).rgb(),
               app.color(QPalette.ColorRole.WindowText).rgb())
        if key == self._colors_for:
            return  # our own setPalette, or nothing that changes our colours
        self.apply_colors()
        if self.message.state != "streaming":
            self.render_text(self.message.content)

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.message.role == "user":
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.background())
            painter.drawRoundedRect(self.rect().adjusted(0, 0, -1, -1), 8, 8)
        if self.keyboard_focus:
            # The focus ring: 2 px of the highlight colour (>= 3:1 against the background),
            # around the chosen button or, with none chosen, the whole message.
            ring = theme.readable(QApplication.palette().color(QPalette.ColorRole.Highlight),
                                  self.background(), 3.0)
            painter.setPen(QPen(ring, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            target = self.focused_action
            rect = (QRect(target.mapTo(self, target.rect().topLeft()), target.size())
                    .adjusted(-1, -1, 1, 1) if target is not None and target.isVisible()
                    else self.rect().adjusted(1, 1, -2, -2))
            painter.drawRoundedRect(rect, 6, 6)
        painter.end()
        super().paintEvent(event)

    # --- content ---------------------------------------------------------------------
    def update_message(self, message: Message) -> None:
        self.message = message
        self.render_text(message.content)
        if message.state != "streaming" or not self.thinking.live:
            self.thinking.show_final(message.reasoning or "", message.reasoning_s)
        self.refresh()

    def refresh(self) -> None:
        """Header, notice, sources, version and buttons from self.message."""
        m = self.message
        stamp = time.strftime("%H:%M", time.localtime(m.created_at))
        stats = stats_text(m) if m.role == "assistant" and m.state != "streaming" else ""
        self.meta.setText(" · ".join(b for b in (stamp, stats) if b))
        self.meta.setToolTip(DRAFTING_TIP if stats and drafting_text(m) else "")
        note, _ = outcome(m)
        self.notice.setText(note)
        self.notice.setVisible(bool(note))
        self._set_notice_tone()
        streaming = m.state == "streaming"
        self.progress_row.setVisible(streaming and not m.content and not self.thinking.text)
        self.thinking.setVisible(m.role == "assistant" and bool(self.thinking.text))
        self.body.setVisible(bool(m.content) or not streaming)
        self._show_sources()
        count = len(m.versions)
        several = count > 1 and m.id in m.versions
        for widget in (self.previous_version, self.version_label, self.next_version):
            widget.setVisible(several)
        if several:
            self.version_label.setText(f"{m.version}/{count}")
            self.version_label.setAccessibleName(f"Version {m.version} of {count}")
            self.previous_version.setEnabled(not self.busy and m.version > 1)
            self.next_version.setEnabled(not self.busy and m.version < count)
        self.copy_button.setVisible(bool(m.content))
        self.edit_button.setVisible(m.role == "user" and m.id > 0)
        self.edit_button.setEnabled(not self.busy)
        self.regenerate_button.setVisible(self.last and m.role == "assistant" and not streaming)
        self.regenerate_button.setEnabled(not self.busy)
        unfinished = m.state in ("interrupted", "stopped", "failed") or m.stop_reason == "length"
        self.continue_button.setVisible(self.last and m.role == "assistant" and unfinished
                                        and bool(m.content) and not streaming)
        self.continue_button.setEnabled(not self.busy)
        who = "You" if m.role == "user" else "Assistant"
        self.setAccessibleName(f"{who}, {stamp}" + (f", version {m.version} of {count}"
                                                    if several else ""))
        self.setAccessibleDescription(" ".join(b for b in (m.content[:500], note) if b))

    def set_last(self, last: bool) -> None:
        self.last = last
        self.refresh()

    def set_busy(self, busy: bool) -> None:
        """While a reply is written, nothing that starts another can be pressed."""
        self.busy = busy
        self.refresh()

    def show_progress(self, stage: str, done: int, total: int) -> None:
        """Before the first word: how far the model load or the prompt reading is."""
        if self.message.content:
            return
        if stage == "load":
            self.progress_label.setText(f"Loading the model… {done}%")
        elif stage == "prompt":
            self.progress_label.setText(f"Reading the conversation… {done:,} of {total:,} tokens")
        else:
            self.progress_label.setText("Waiting for the model…")
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)
        self.progress_row.show()

    def _show_sources(self) -> None:
        sources = self.message.sources
        muted = self.colors.muted
        if self.message.role == "assistant" and sources:
            links = " &nbsp; ".join(
                f'<a href="source:{i}">[{s.get("n", i + 1)}] {html.escape(s.get("location", ""))}</a>'
                for i, s in enumerate(sources))
            self.sources_label.setText(f'<span style="color:{muted}">Sources:</span> {links}')
            self.sources_label.show()
        elif self.message.role == "user" and (self.message.context or "").startswith(
                "No passage in my attached documents matched"):
            self.sources_label.setText(f'<span style="color:{muted}">No passage in the attached '
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
        self.body.fit()

    def render_streaming(self, text: str) -> None:
        """Incremental render while a reply streams: blocks that can no longer change (before
        the last blank line outside a code fence) are rendered once and appended; only the
        unfinished tail is re-rendered. The tail starts in a block of its own: inserted HTML
        merges its first block into the block at the cursor, which put a heading and the
        paragraph before it on one line. end_stream renders the whole reply once more."""
        first = not self.message.content and bool(text)
        self.message.content = text
        if self.thinking.live and text:
            self.thinking.stop_live()  # the answer started: the count stops
        if first:
            self.progress_row.hide()
            self.body.show()
            self.body.clear()
            self._stable_chars = 0
            self._tail_at = 0
        split = stable_split(text, self._stable_chars)
        document = self.body.document()
        cursor = QTextCursor(document)
        cursor.beginEditBlock()
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        if split > self._stable_chars:
            self.renderer.code_blocks = self.renderer.code_blocks[:self._stable_blocks()]
            cursor.insertHtml(self.renderer.render(text[self._stable_chars:split],
                                                   keep_blocks=True))
            self._stable_chars = split
            self._stable_count = len(self.renderer.code_blocks)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self._tail_at = cursor.position()
        self.renderer.code_blocks = self.renderer.code_blocks[:self._stable_blocks()]
        tail = text[self._stable_chars:]
        if tail.strip():
            cursor.insertHtml(self.renderer.render(tail, keep_blocks=True))
        cursor.endEditBlock()
        self.body.fit()

    def render_reasoning(self, text: str, since: float | None = None) -> None:
        """While a reply streams: its thinking so far, the section counting seconds (from
        `since`, a monotonic time, when the thinking began before this widget existed)."""
        self.message.reasoning = text
        if not self.thinking.live and not self.message.content:
            self.thinking.start_live(since)
        self.thinking.set_text(text)
        self.progress_row.hide()
        self.thinking.show()

    def _thinking_toggled(self, _expanded: bool) -> None:
        self.update()  # the focus ring follows the header and the new height

    def _stable_blocks(self) -> int:
        return getattr(self, "_stable_count", 0) if self._stable_chars else 0

    # --- actions ---------------------------------------------------------------------
    def copy_text(self) -> None:
        """Copy the whole message (a reply as its Markdown) and say so on the button."""
        self.copy_requested.emit(self.message.content)
        self.copy_button.setText("Copied")
        self.copy_button.setAccessibleName("Copied")
        _fit_width(self.copy_button)
        self._copy_timer.start()

    def _copy_reset(self) -> None:
        self.copy_button.setText("Copy")
        _fit_width(self.copy_button)
        self.copy_button.setAccessibleName(
            "Copy your message" if self.message.role == "user" else "Copy the reply")
        if self.renderer.copied is not None:
            self.renderer.copied = None
            if self.message.state != "streaming":
                self.render_text(self.message.content)

    def _anchor(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            index = int(url.path() or 0)
            if 0 <= index < len(self.renderer.code_blocks):
                self.copy_requested.emit(self.renderer.code_blocks[index])
                if self.message.state != "streaming":
                    self.renderer.copied = index  # the link says "Copied" for a moment
                    self.render_text(self.message.content)
                    self._copy_timer.start()
        elif url.scheme() in EXTERNAL_SCHEMES:
            QDesktopServices.openUrl(url)

    def start_edit(self) -> None:
        if self.busy or self.message.role != "user":
            return
        self.editor.setPlainText(self.message.content)
        self.body.hide()
        self.edit_box.show()
        self.editor.setFocus(Qt.FocusReason.OtherFocusReason)
        self.editor.moveCursor(QTextCursor.MoveOperation.End)

    def cancel_edit(self) -> None:
        self.edit_box.hide()
        self.body.show()

    @property
    def editing(self) -> bool:
        return not self.edit_box.isHidden()

    def _submit_edit(self) -> None:
        text = self.editor.toPlainText().strip()
        if not text or self.busy:
            return
        self.cancel_edit()
        self.edit_submitted.emit(self.message.id, text)

    def _step_version(self, step: int) -> None:
        versions = self.message.versions
        at = self.message.version - 1 + step
        if not self.busy and 0 <= at < len(versions):
            self.version_requested.emit(versions[at])

    def action_buttons(self) -> list[QPushButton]:
        """The buttons the arrow keys walk through, in reading order (visible, enabled)."""
        return [b for b in (self.thinking.header, self.previous_version, self.next_version,
                            self.copy_button,
                            self.edit_button, self.regenerate_button, self.continue_button)
                if b.isVisibleTo(self) and b.isEnabled()]

    def set_keyboard_focus(self, on: bool, action: QPushButton | None = None) -> None:
        self.keyboard_focus = on
        self.focused_action = action if on else None
        self.update()
