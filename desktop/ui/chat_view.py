"""The conversation view: one widget per message; streaming re-renders only the last one.

Re-rendering the whole conversation per token took 27 s for 3,000 tokens in a measurement
(DESIGN 7). Here pieces are appended to a buffer and the last message's Markdown is
re-rendered at most RENDER_HZ times a second, then once fully at the end.

The messages sit in a column at most READING_WIDTH wide, centred: lines of 1,300 px are
hard to read. For the keyboard the conversation is one Tab stop: Up/Down choose a message,
Left/Right one of its buttons, Enter or Space presses it, Home/End jump; a 2 px ring in the
highlight colour shows where that is.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAccessible, QAccessibleEvent, QGuiApplication, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.core.store.chats import Message
from desktop.ui import theme
from desktop.ui.image_attachments import message_images, show_on_message
from desktop.ui.message_widget import MessageWidget, stable_split

RENDER_HZ = 15
READING_WIDTH = 760
_stable_split = stable_split  # the old name, for callers that measured it


def is_dark() -> bool:
    return theme.is_dark()


class ChatView(QScrollArea):
    source_requested = Signal(dict)
    regenerate_requested = Signal(int)  # the reply's id (the last reply)
    continue_requested = Signal()
    edit_requested = Signal(str)  # older wiring (edit in the message box); see edit_submitted
    edit_submitted = Signal(int, str)  # a user message's id and its new text: a new version
    version_requested = Signal(int)  # show this version (a message id) and its replies

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Conversation")
        self.setAccessibleDescription("Up and Down choose a message, Left and Right its "
                                      "buttons, Enter presses one.")
        self.container = QWidget()
        self.container.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer = QHBoxLayout(self.container)
        outer.setContentsMargins(16, 12, 16, 12)
        self.column_widget = QWidget()
        self.column_widget.setMaximumWidth(READING_WIDTH)
        outer.addStretch(1)
        outer.addWidget(self.column_widget, 100)
        outer.addStretch(1)
        self.column = QVBoxLayout(self.column_widget)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(10)
        self.notice = QLabel()  # chat-wide notes (context full, export done), after the last
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Conversation notice")
        self.notice.hide()
        self.column.addWidget(self.notice)
        self.column.addStretch(1)
        self.setWidget(self.container)
        self.widgets: list[MessageWidget] = []
        self.busy = False
        self.current = -1  # the message chosen with the keyboard
        self.current_action = -1  # its button, -1: the message itself
        self.last_announcement = ""
        self._edited_versions: list[int] = []  # versions of the user message being replaced
        self._buffer: list[str] = []
        self._dirty = False
        self._stream_text = ""
        # A reasoning model's thinking streams beside the answer, on the same timer.
        self._reason_buffer: list[str] = []
        self._stream_reasoning = ""
        self.reasoning_since: float | None = None  # when the thinking began (monotonic)
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // RENDER_HZ)
        self._timer.timeout.connect(self._flush)
        self.verticalScrollBar().rangeChanged.connect(self._follow)
        self._stick_to_bottom = True
        self._apply_notice_colour()

    # --- content ---------------------------------------------------------------------
    def clear(self) -> None:
        self._timer.stop()
        self._buffer.clear()
        self._reason_buffer.clear()
        self._dirty = False
        self._drop_from(0)
        self.notice.hide()
        self.current, self.current_action = -1, -1

    def _drop_from(self, index: int) -> None:
        for widget in self.widgets[index:]:
            widget.setParent(None)
            widget.deleteLater()
        del self.widgets[index:]
        if self.current >= len(self.widgets):
            self.current, self.current_action = len(self.widgets) - 1, -1

    def set_messages(self, messages: list[Message]) -> None:
        """Show a branch. Widgets of the leading messages that did not change are kept (a
        version switch rebuilds only from the switched message down)."""
        self._timer.stop()
        self._buffer.clear()
        self._reason_buffer.clear()
        keep = 0
        for widget, message in zip(self.widgets, messages, strict=False):
            same = (widget.message.id == message.id and message.id > 0
                    and widget.message.content == message.content
                    and widget.message.state == message.state and not widget.editing)
            if not same:
                break
            widget.message = message  # fresh versions and stats
            keep += 1
        self._drop_from(keep)
        self.notice.hide()
        for message in messages[keep:]:
            self.add_message(message)
        for widget in self.widgets[:keep]:
            widget.refresh()
        self._mark_last()
        self._stick_to_bottom = True
        self.relayout()
        if self.hasFocus() and self.widgets and not 0 <= self.current < len(self.widgets):
            self.current, self.current_action = len(self.widgets) - 1, -1
            self._show_keyboard_focus()

    def add_message(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message, self.column_widget)
        widget.copy_requested.connect(self._copy)
        widget.regenerate_requested.connect(self.regenerate_requested.emit)
        widget.source_requested.connect(self.source_requested.emit)
        widget.continue_requested.connect(self.continue_requested.emit)
        widget.edit_submitted.connect(self.edit_submitted.emit)
        widget.version_requested.connect(self.version_requested.emit)
        widget.busy = self.busy
        self.column.insertWidget(self.column.indexOf(self.notice), widget)
        show_on_message(widget, message_images(message))  # a message keeps its images
        widget.show()  # now, not with the layout's queued show: sizes are measured at once
        self.widgets.append(widget)
        self._mark_last()
        return widget

    def cut_at(self, message_id: int) -> None:
        """Remove a message and everything after it from the view (an edit starts there)."""
        for index, widget in enumerate(self.widgets):
            if widget.message.id == message_id:
                if widget.message.role == "user":
                    # The edited text becomes the next version of this message.
                    self._edited_versions = list(widget.message.versions or [message_id])
                self._drop_from(index)
                self._mark_last()
                return

    def _mark_last(self) -> None:
        for index, widget in enumerate(self.widgets):
            last = index == len(self.widgets) - 1
            if widget.last != last:
                widget.set_last(last)

    def _copy(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)

    def set_notice(self, text: str | None) -> None:
        """A note about the whole chat, shown after the last message where it is seen."""
        self.notice.setText(text or "")
        self.notice.setVisible(bool(text))
        if text:
            self._stick_to_bottom = True
            self.relayout()

    def _apply_notice_colour(self) -> None:
        palette = QPalette(self.notice.palette())
        app = QApplication.palette()
        back = app.color(QPalette.ColorRole.Window)
        palette.setColor(QPalette.ColorRole.WindowText,
                         theme.readable(app.color(QPalette.ColorRole.WindowText), back))
        self.notice.setPalette(palette)

    def set_busy(self, busy: bool) -> None:
        """While a reply is being written nothing that starts another one can be pressed."""
        self.busy = busy
        for widget in self.widgets:
            widget.set_busy(busy)

    # --- streaming -----------------------------------------------------------------
    def begin_stream(self, message: Message) -> None:
        self._stream_text = ""
        self._buffer.clear()
        self._stream_reasoning = ""
        self._reason_buffer.clear()
        self.reasoning_since = None
        self._dirty = False
        self._stick_to_bottom = True
        widget = self.add_message(message)
        widget.progress_row.show()
        self.set_busy(True)
        self._timer.start()
        self.relayout()

    def resume_stream(self) -> None:
        """Stream into the last message (a reply being continued) instead of a new one."""
        widget = self.widgets[-1]
        self._stream_text = widget.message.content
        self._stream_reasoning = widget.message.reasoning or ""
        self._reason_buffer.clear()
        self.reasoning_since = None
        widget.message.state = "streaming"
        widget.refresh()
        self.set_busy(True)
        self._stick_to_bottom = True
        self._timer.start()

    def show_progress(self, stage: str, done: int, total: int) -> None:
        """Model load or prompt reading progress, in the reply being waited for."""
        if self.widgets and self.widgets[-1].message.state == "streaming":
            self.widgets[-1].show_progress(stage, done, total)

    def append(self, piece: str) -> None:
        """Called per streamed piece: O(1), the render happens on the timer."""
        self._buffer.append(piece)
        self._dirty = True

    def append_reasoning(self, piece: str) -> None:
        """A piece of a reasoning model's thinking: O(1), rendered on the same timer."""
        if self.reasoning_since is None:
            self.reasoning_since = time.monotonic()
        self._reason_buffer.append(piece)
        self._dirty = True

    def _flush(self) -> None:
        if not self._dirty or not self.widgets:
            return
        if self._reason_buffer:
            self._stream_reasoning += "".join(self._reason_buffer)
            self._reason_buffer.clear()
            self.widgets[-1].render_reasoning(self._stream_reasoning, self.reasoning_since)
            if not self._buffer:
                self._dirty = False
                return
        self._stream_text += "".join(self._buffer)
        self._buffer.clear()
        self._dirty = False
        self.widgets[-1].render_streaming(self._stream_text)

    def end_stream(self, message: Message | None) -> None:
        self._timer.stop()
        self._flush()
        self.set_busy(False)
        if message is not None and len(self.widgets) >= 2 and message.parent_id:
            asked = self.widgets[-2]
            if asked.message.role == "user" and asked.message.id <= 0:
                # The question was drawn before it was stored: now it has its id (so Edit
                # shows) and, after an edit, its place among the versions.
                asked.message.id = message.parent_id
                asked.message.versions = [*self._edited_versions, message.parent_id] \
                    if self._edited_versions else [message.parent_id]
                asked.refresh()
        self._edited_versions = []
        if message is not None and self.widgets:
            widget = self.widgets[-1]
            widget.update_message(message)
            widget.set_last(True)
            self.last_announcement = (f"Reply finished: {len(message.content.split())} words."
                                      if message.state == "done" else outcome_note(message))
            # The window announces the finished reply (MainWindow.announce); the message's
            # description holds its text for a screen reader that moves onto it.
            widget.setAccessibleDescription(message.content[:500])
        self.relayout()

    def relayout(self) -> None:
        """Bring every size up to date now, not at the next paint or scroll: a reply's height
        changes at the end of a stream, and until the layouts ran its text was drawn over the
        Sources line and the buttons below it."""
        for widget in self.widgets[-2:]:
            widget.body.fit()
        # Each pass runs the pending layout requests of one level (message, column,
        # container, and the scroll area resizing the container); three levels deep.
        for _ in range(4):
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    @property
    def streaming_text(self) -> str:
        return self._stream_text + "".join(self._buffer)

    @property
    def streaming_reasoning(self) -> str:
        return self._stream_reasoning + "".join(self._reason_buffer)

    def _follow(self, _min: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(maximum)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        super().scrollContentsBy(dx, dy)
        bar = self.verticalScrollBar()
        self._stick_to_bottom = bar.value() >= bar.maximum() - 4

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            self._apply_notice_colour()
            for widget in self.widgets:
                widget.follow_palette()

    # --- keyboard --------------------------------------------------------------------
    def focusInEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().focusInEvent(event)
        if self.widgets and not 0 <= self.current < len(self.widgets):
            self.current, self.current_action = len(self.widgets) - 1, -1
        if event.reason() != Qt.FocusReason.MouseFocusReason:
            self._show_keyboard_focus()  # a click shows no ring; the first arrow key will

    def focusOutEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().focusOutEvent(event)
        for widget in self.widgets:
            if widget.keyboard_focus:
                widget.set_keyboard_focus(False)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if not self.widgets:
            super().keyPressEvent(event)
            return
        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Home, Qt.Key.Key_End):
            last = len(self.widgets) - 1
            self.current = {Qt.Key.Key_Up: max(0, self.current - 1),
                            Qt.Key.Key_Down: min(last, self.current + 1),
                            Qt.Key.Key_Home: 0, Qt.Key.Key_End: last}[Qt.Key(key)]
            self.current_action = -1
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            actions = self.widgets[self.current].action_buttons()
            if actions:
                step = 1 if key == Qt.Key.Key_Right else -1
                self.current_action = max(-1, min(len(actions) - 1, self.current_action + step))
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            actions = self.widgets[self.current].action_buttons()
            if 0 <= self.current_action < len(actions):
                actions[self.current_action].click()
                # The message may have been rebuilt (a version switch): stay on a valid place.
                self.current = min(self.current, len(self.widgets) - 1)
                count = len(self.widgets[self.current].action_buttons()) if self.widgets else 0
                self.current_action = min(self.current_action, count - 1)
            elif self.widgets[self.current].message.role == "user":
                self.widgets[self.current].start_edit()
                return
        elif key in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            super().keyPressEvent(event)
            return
        else:
            super().keyPressEvent(event)
            return
        self._show_keyboard_focus()

    def _show_keyboard_focus(self) -> None:
        if not self.widgets or not self.hasFocus():
            return
        self.current = max(0, min(self.current, len(self.widgets) - 1))
        chosen = self.widgets[self.current]
        actions = chosen.action_buttons()
        action = actions[self.current_action] if 0 <= self.current_action < len(actions) else None
        for widget in self.widgets:
            if widget is chosen:
                widget.set_keyboard_focus(True, action)
            elif widget.keyboard_focus:
                widget.set_keyboard_focus(False)
        self._stick_to_bottom = False
        self.ensureWidgetVisible(action or chosen, 16, 16)
        # Screen readers follow the chosen message (or button) as if it had focus.
        QAccessible.updateAccessibility(QAccessibleEvent(action or chosen,
                                                         QAccessible.Event.Focus))

    def focused_widget(self) -> tuple[MessageWidget | None, object]:
        """The message (and button) the keyboard is on: for tests and accessibility."""
        if not 0 <= self.current < len(self.widgets):
            return None, None
        widget = self.widgets[self.current]
        return widget, widget.focused_action


def outcome_note(message: Message) -> str:
    from desktop.ui.message_widget import outcome

    note, _ = outcome(message)
    return note or "Reply finished."
