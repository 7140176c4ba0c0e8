"""The main window's reply lifecycle: send, regenerate, continue, edit and versions; the reply
streaming in from its worker thread (text, thinking, load and prompt progress), its end or
failure, Stop, the screen-reader announcement, and the context meter."""

from __future__ import annotations

import functools
import inspect
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent

from desktop.core.chat import conversations as chats
from desktop.core.chat.conversations import Message
from desktop.core.errors import EngineCrashed
from desktop.ui import image_attachments
from desktop.ui.tasks import run_in_background
from desktop.ui.window_model import BUSY

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


class Replies(QObject):
    """Owns the running reply: it belongs to its chat (streaming_id), not to what is shown."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.generating = False
        self.streaming_id: int | None = None  # the chat whose reply is being written
        self.editing = False  # the next send replaces the last user message
        self.live_text = ""  # the streaming reply so far (to show it again on return)
        self.live_reasoning = ""  # and its thinking so far
        self.thinking_since: float | None = None  # when that began (monotonic)
        self.last_announcement = ""
        self._first_piece = False

    def send(self, text: str) -> None:
        w = self.window
        text = text.strip()
        if not text and not w.image_tray.paths:
            return
        if self.generating:
            where = "" if self.streaming_id == w.current_id else " in another chat"
            w.show_error(f"A reply is still being written{where}: wait for it or press "
                         "Stop (Esc).", BUSY)
            return
        if w.loading:
            w.show_error("The model is loading: send again in a moment.", BUSY)
            return
        if not w.ctx.settings.get("last_model"):
            w.show_error("Choose a model first: pick one above or open a GGUF file.")
            return
        images = image_attachments.images_for_send(w)
        if images is None:
            return  # the model cannot see them: said why, the message stays in the box
        w.clear_error()
        w.chat_list.ensure_conversation()
        w.composer.clear()
        editing, self.editing = self.editing, False
        if editing:
            # The last user message and its reply are replaced by the edited text.
            w.chat_view.set_messages(self._messages_before_last_user())
        sent = w.chat_view.add_message(Message(0, w.current_id or 0, "user", text, "done",
                                               time.time()))
        image_attachments.show_on_message(sent, images)
        w.stack.setCurrentWidget(w.chat_view)
        job = w.service.edit_last_user_message if editing else \
            image_attachments.send_job(w.service, images)
        self._run_reply(job, w.current_id, text)

    def _messages_before_last_user(self) -> list[Message]:
        w = self.window
        messages = chats.messages(w.ctx, w.current_id) if w.current_id else []
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        return messages[: users[-1]] if users else messages

    def regenerate(self, reply_id: int | None = None) -> None:
        """A new version of the last reply (or of `reply_id`); the old one is kept (‹ 1/2 ›)."""
        w = self.window
        if self.generating or w.current_id is None:
            return
        messages = chats.messages(w.ctx, w.current_id)
        if reply_id is not None and any(m.id == reply_id for m in messages):
            messages = messages[:[m.id for m in messages].index(reply_id)]
        while messages and messages[-1].role == "assistant":
            messages.pop()
        w.chat_view.set_messages(messages)
        if reply_id is None:
            self._run_reply(w.service.regenerate, w.current_id)
        else:
            self._run_reply(w.service.regenerate_reply, w.current_id, reply_id)

    def continue_reply(self) -> None:
        w = self.window
        if self.generating or w.current_id is None or not w.chat_view.widgets:
            return
        w.chat_view.set_notice(None)
        self._run_reply(w.service.continue_reply, w.current_id, resume=True)

    def edit_last(self, text: str) -> None:
        if self.generating:
            return
        self.editing = True
        self.window.composer.setPlainText(text)
        self.window.composer.setFocus()

    def _run_reply(self, job: Any, *args: Any, resume: bool = False) -> None:
        w = self.window
        self.generating = True
        self.streaming_id = w.current_id
        w.stop_button.setEnabled(True)
        w.send_button.setEnabled(False)
        w.model_box.setEnabled(False)
        self.live_reasoning, self.thinking_since = "", None
        if resume:
            self.live_text = w.chat_view.widgets[-1].message.content
            self.live_reasoning = w.chat_view.widgets[-1].message.reasoning or ""
            w.chat_view.resume_stream()
        else:
            self.live_text = ""
            placeholder = Message(0, w.current_id or 0, "assistant", "", "streaming",
                                  time.time())
            w.chat_view.begin_stream(placeholder)
        self._first_piece = True
        w.chat_list.refresh_conversations()
        if "on_reasoning" in inspect.signature(job).parameters:
            # A reasoning model's thinking reaches the view beside the text (throttled alike).
            job = functools.partial(job, on_reasoning=w.reasoning_arrived.emit)
        run_in_background(job, *args, w.text_arrived.emit,
                          on_done=self._reply_done, on_error=self._reply_failed)

    def edit_message(self, message_id: int, text: str) -> None:
        """Any user message edited in place: a new version of it, and a new reply."""
        w = self.window
        if self.generating or w.loading or w.current_id is None:
            w.show_error("A reply is still being written: wait for it or press Stop (Esc).",
                         BUSY)
            return
        w.clear_error()
        w.chat_view.cut_at(message_id)
        w.chat_view.add_message(Message(0, w.current_id, "user", text, "done", time.time()))
        self._run_reply(w.service.edit_message, w.current_id, message_id, text)

    def show_version(self, message_id: int) -> None:
        """‹ › on a message: that version and what was written after it."""
        w = self.window
        if w.current_id is None or self.streaming_id == w.current_id:
            return
        w.chat_view.set_messages(w.service.switch_version(w.current_id, message_id))
        self.update_meter()

    def on_progress(self, stage: str, done: int, total: int) -> None:
        w = self.window
        if self.generating and w.current_id == self.streaming_id:
            w.chat_view.show_progress(stage, done, total)
        if stage == "load" and total:
            # A load from the picker, a reload or the first reply: the status line counts.
            label = w.model_control.load_label or \
                f"Loading {Path(w.ctx.settings.get('last_model') or 'the model').name}"
            w.model_status.show_text(f"{label}… {100 * done // total}%")

    def on_text(self, piece: str) -> None:
        w = self.window
        self.live_text += piece
        if w.current_id == self.streaming_id:
            w.chat_view.append(piece)
        if self._first_piece:
            self._first_piece = False
            w.chat_list.refresh_conversations()  # the new chat's title is saved by now

    def on_reasoning(self, piece: str) -> None:
        w = self.window
        self.live_reasoning += piece
        if self.thinking_since is None:
            self.thinking_since = time.monotonic()
        if w.current_id == self.streaming_id:
            w.chat_view.append_reasoning(piece)
        if self._first_piece:
            self._first_piece = False
            w.chat_list.refresh_conversations()  # the new chat's title is saved by now

    def _finish(self) -> int | None:
        w = self.window
        models = w.model_control
        finished, self.streaming_id = self.streaming_id, None
        self.generating = False
        self.live_text = ""
        self.live_reasoning, self.thinking_since = "", None
        w.stop_button.setEnabled(False)
        w.send_button.setEnabled(not w.loading)
        w.model_box.setEnabled(not w.loading)
        w.clear_error(BUSY)  # "a reply is still being written" is no longer true
        if w.service.model is not None and (
                models.loaded_with is None or models.loaded_with["path"] != w.service.model.path):
            models.loaded_with = models.wanted(w.service.model.path)  # loaded by this reply
        models.describe_model()
        return finished

    def announce(self, text: str) -> None:
        """Tell screen readers (a polite announcement, as a chat app's "reply finished")."""
        self.last_announcement = text
        event = QAccessibleAnnouncementEvent(self.window.chat_view, text)
        QAccessible.updateAccessibility(event)

    def _reply_done(self, message: Message) -> None:
        w = self.window
        finished = self._finish()
        title = chats.conversation(w.ctx, message.conversation_id).title or "the chat"
        w.announce(f"Reply finished: {title}" if message.state == "done" else
                   f"Reply stopped: {title}")
        on_screen = finished is not None and finished == w.current_id
        if on_screen:
            w.chat_view.end_stream(message)
        if w.model_box.currentData() != w.ctx.settings.get("last_model"):
            w.model_control.refresh_models()  # a model first used by this reply joins the picker
        if on_screen and w.current_id is not None:
            self.update_meter()
            notices = []
            if w.service.context_start.get(w.current_id):
                notices.append("Older messages are no longer in the model's context (it is "
                               "full); the model sees only the more recent part of this chat.")
            if chats.source_names(w.ctx, w.current_id) and not message.sources:
                notices.append("No passage in the attached documents matched this question.")
            w.chat_view.set_notice(" ".join(notices) or None)
        w.chat_list.refresh_conversations()
        if w.model_control.reload_pending:
            w.model_control.check_reload()

    def _reply_failed(self, exc: BaseException) -> None:
        w = self.window
        finished = self._finish()
        if finished is not None and finished == w.current_id:
            w.chat_view.end_stream(None)
            # Show what was kept (the partial reply is saved as failed/stopped).
            w.chat_view.set_messages(chats.messages(w.ctx, finished))
        w.show_error(exc)
        if isinstance(exc, EngineCrashed):
            w.error_label.show_text(exc.message + " The partial reply was kept; send again "
                                    "to restart the model.", "error")
        w.chat_list.refresh_conversations()
        if w.model_control.reload_pending:
            w.model_control.check_reload()

    def stop(self) -> None:
        if self.generating:
            self.window.service.stop()

    def update_meter(self, messages: list[Message] | None = None) -> None:
        w = self.window
        w.remote_marker.refresh(w.ctx, w.current_id)  # another chat, or a reply
        if messages is None:
            messages = chats.messages(w.ctx, w.current_id) if w.current_id else []
        model = w.service.model
        n_ctx = model.n_ctx if model else int(w.ctx.settings.get("n_ctx") or 4096)
        used = 0
        for message in reversed(messages):
            if message.role == "assistant" and message.prompt_tokens:
                used = message.prompt_tokens + (message.completion_tokens or 0)
                break
        w.context_meter.show_usage(used, n_ctx)
