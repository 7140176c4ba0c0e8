"""The main window: the chat list (sidebar.py), the toolbar (toolbar.py), the conversation
(chat_view.py) or the start panel (first_run.py), and the message box.

The window calls services (ChatService, desktop/core/chat/conversations.py), never the
store. A reply runs on a worker thread and belongs to its chat, not to what is on screen:
the user may read other chats while it is written; it goes on, is saved, and shows live
again when its chat is opened.
"""

from __future__ import annotations

import functools
import inspect
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Qt, Signal
from PySide6.QtGui import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat import conversations as chats
from desktop.core.chat.conversations import Message
from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import EngineCrashed, HearthError, error_text
from desktop.core.models.starter import starter_note
from desktop.ui import image_attachments
from desktop.ui.actions import install_shortcuts, set_focus_order
from desktop.ui.api_status import install_api_server
from desktop.ui.attachments import DropHighlight, FileChips
from desktop.ui.chat_settings import ChatSettingsDialog
from desktop.ui.chat_view import ChatView

try:  # the conversation's reading width (chat_view.py), which the message box lines up with
    from desktop.ui.chat_view import READING_WIDTH
except ImportError:  # pragma: no cover - an older chat view
    READING_WIDTH = 760
from desktop.ui.composer import Composer
from desktop.ui.first_run import StartPanel
from desktop.ui.remote_panel import (
    REMOTE_ITEM,
    RemoteMarker,
    add_remote_items,
    is_remote_ref,
    open_remote_dialog,
    remote_status,
)
from desktop.ui.sidebar import Sidebar
from desktop.ui.tasks import run_in_background
from desktop.ui.toolbar import ChatToolbar, ContextMeter
from desktop.ui.widgets import StatusLine

OPEN_FILE = "__open__"
BUSY = "busy"  # errors whose cause is a running reply or load: cleared when it ends


class OneLineStatus(StatusLine):
    """The model's status: one line, elided, whole text in the tooltip."""

    LINES = 1


class MainWindow(QMainWindow):
    text_arrived = Signal(str)  # emitted from the reply thread; queued onto the GUI thread
    reasoning_arrived = Signal(str)  # a reasoning model's thinking, the same way
    progress_arrived = Signal(str, int, int)  # model load / prompt reading, same thread hop

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.service = ChatService(ctx)
        self.current_id: int | None = None
        self.streaming_id: int | None = None  # the chat whose reply is being written
        self.generating = False
        self.loading = False
        self.editing = False
        self._live_text = ""  # the streaming reply so far (to show it again on return)
        self._live_reasoning = ""  # and its thinking so far
        self._thinking_since: float | None = None  # when that began (monotonic)
        self._loaded_with: dict[str, Any] | None = None
        self._reload_pending = False
        self._error_details = ""
        self._error_kind: str | None = None
        self.last_announcement = ""
        self._load_label = ""  # what the status line says while a model loads
        self.models_page: Any = None
        self.documents_page: Any = None
        self.setAcceptDrops(True)
        self.setWindowTitle("Hearth")
        self.resize(1100, 760)
        self._build()
        self.text_arrived.connect(self._on_text)
        self.reasoning_arrived.connect(self._on_reasoning)
        self.progress_arrived.connect(self._on_progress)
        self.service.on_progress = self.progress_arrived.emit
        self.shortcuts = install_shortcuts(self)
        set_focus_order(self)
        self._observe_app()
        self._restore()

    # --- layout ----------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = Sidebar()
        self.sidebar.new_requested.connect(self.new_chat)
        self.sidebar.selected.connect(self.open_conversation)
        self.sidebar.rename_requested.connect(self.rename_conversation)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.sidebar.export_requested.connect(self.export_conversation)
        self.sidebar.search_changed.connect(lambda _: self.refresh_conversations())

        self.toolbar = ChatToolbar()
        self.model_box = self.toolbar.model_box
        self.model_box.activated.connect(self._model_chosen)
        self.models_button = self.toolbar.models_button
        self.models_button.clicked.connect(self.open_models)
        self.documents_button = self.toolbar.documents_button
        self.documents_button.clicked.connect(self.open_documents)
        self.sources_button = self.toolbar.sources_button
        self.sources_menu = self.toolbar.sources_menu
        self.sources_menu.aboutToShow.connect(self._fill_sources_menu)
        self.settings_button = self.toolbar.settings_button
        self.settings_button.clicked.connect(self.edit_chat_settings)

        self.model_status = OneLineStatus("Model status")
        self.context_meter = ContextMeter()
        self.context_meter.show_usage(0, int(self.ctx.settings.get("n_ctx") or 4096))
        status_row = QHBoxLayout()
        status_row.addWidget(self.model_status, 1)
        # The app's API server: serves this window's model, shows when it serves a request.
        self.api_status = install_api_server(self)
        status_row.addWidget(self.api_status)
        status_row.addWidget(self.context_meter)

        self.start_panel = StartPanel()
        self.start_panel.setAccessibleName("Start")
        self.start_panel.download_requested.connect(self.download_recommended)
        self.start_panel.open_file_requested.connect(self.open_model_file)
        self.start_panel.browse_requested.connect(self.open_models)
        self.empty = self.start_panel  # what older callers and tests call the empty page
        self.chat_view = ChatView()
        self.chat_view.setAccessibleName("Conversation")
        self.chat_view.regenerate_requested.connect(self.regenerate)
        self.chat_view.edit_requested.connect(self.edit_last)
        self.chat_view.source_requested.connect(self.show_source)
        self.chat_view.continue_requested.connect(self.continue_reply)
        self.chat_view.edit_submitted.connect(self.edit_message)
        self.chat_view.version_requested.connect(self.show_version)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_panel)
        self.stack.addWidget(self.chat_view)
        self.drop_highlight = DropHighlight(self.stack)

        self.error_label = StatusLine("Error")
        self.copy_details = QPushButton("Copy details")
        self.copy_details.setAccessibleName("Copy error details")
        self.copy_details.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self._error_details))
        self.dismiss_error = QPushButton("Dismiss")
        self.dismiss_error.setAccessibleName("Dismiss the error")
        self.dismiss_error.clicked.connect(lambda: self.clear_error())
        error_row = QHBoxLayout()
        error_row.setContentsMargins(0, 0, 0, 0)
        error_row.addWidget(self.error_label, 1)
        error_row.addWidget(self.copy_details)
        error_row.addWidget(self.dismiss_error)
        self.error_box = QWidget()
        self.error_box.setLayout(error_row)
        self.error_box.hide()

        self.file_chips = FileChips()
        self.composer = Composer()
        self.composer.setAccessibleName("Message")
        self.composer.submitted.connect(self.send)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setAccessibleName("Send")
        self.send_button.setToolTip("Send the message (Enter)")
        self.send_button.clicked.connect(lambda: self.send(self.composer.toPlainText()))
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop the reply")
        self.stop_button.setToolTip("Stop the reply (Esc); what was written is kept")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        compose_row = QHBoxLayout()
        compose_row.addWidget(self.composer, 1)
        compose_row.addLayout(buttons)

        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(4, 8, 8, 8)
        column.addWidget(self.toolbar)
        column.addLayout(status_row)
        column.addWidget(self.stack, 1)
        column.addWidget(self.error_box)
        above_composer = QHBoxLayout()
        above_composer.setContentsMargins(0, 0, 0, 0)
        above_composer.addWidget(self.sources_button)
        above_composer.addWidget(self.file_chips, 1)
        self.remote_marker = RemoteMarker()  # shown when this chat goes to a remote server
        above_composer.addWidget(self.remote_marker)
        # The message box lines up with the conversation's reading column on a wide window.
        self.compose_area = QWidget()
        self.compose_area.setMaximumWidth(READING_WIDTH + 120)
        compose_column = QVBoxLayout(self.compose_area)
        compose_column.setContentsMargins(0, 0, 0, 0)
        compose_column.addLayout(above_composer)
        compose_column.addLayout(compose_row)
        # Images for vision models: a tray above the box (button, paste, drop), ui module.
        self.image_tray = image_attachments.install(self)
        centred = QHBoxLayout()
        centred.addStretch(0)
        centred.addWidget(self.compose_area, 1)
        centred.addStretch(0)
        column.addLayout(centred)

        self.splitter = QSplitter()
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.splitterMoved.connect(self._remember_sidebar)
        self.setCentralWidget(self.splitter)

    def _observe_app(self) -> None:
        from desktop.ui.bridge import app_signals

        signals = app_signals(self.ctx)
        signals.library_changed.connect(self._library_changed)
        signals.settings_changed.connect(self._check_reload)
        signals.download_changed.connect(self._download_changed)

    def _restore(self) -> None:
        geometry = self.ctx.settings.get("window_geometry")
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        width = int(self.ctx.settings.get("sidebar_width") or 0)
        width = width or (230 if self.width() >= 1000 else 200)
        self.splitter.setSizes([width, max(400, self.width() - width)])
        self.refresh_models()
        run_in_background(chats.adopt_chosen_model, self.ctx,
                          on_done=lambda added: self.refresh_models() if added else None,
                          on_error=self.show_error)
        last = self.ctx.settings.get("last_conversation")
        self.refresh_conversations()
        if last in [c.id for c in self.sidebar.model.items]:
            self.open_conversation(last)
        else:
            self._show_empty()
        self._paused_downloads()
        # What the empty area offers is decided once the library is read (and on a first run
        # the starter model registered), off the GUI thread: no "no model yet" flash.
        run_in_background(chats.start_view, self.ctx, on_done=self._start_view_ready,
                          on_error=self.show_error)

    def _remember_sidebar(self, *_: Any) -> None:
        self.ctx.settings.values["sidebar_width"] = self.splitter.sizes()[0]

    # --- errors --------------------------------------------------------------------
    def show_error(self, exc: BaseException | str, kind: str | None = None) -> None:
        if isinstance(exc, HearthError):
            message, details = exc.message, exc.details
        elif isinstance(exc, BaseException):
            message = error_text(exc)
            details = getattr(exc, "__traceback_text__", repr(exc))
        else:
            message, details = exc, ""
        self._error_details = f"{message}\n\n{details}".strip()
        self._error_kind = kind
        self.error_label.show_text(message, "error")
        self.copy_details.setVisible(bool(details))
        self.error_box.show()

    def clear_error(self, kind: str | None = None) -> None:
        """Hide the error; with `kind`, only an error of that kind (its cause is gone)."""
        if kind is None or self._error_kind == kind:
            self.error_box.hide()
            self._error_kind = None

    # --- models --------------------------------------------------------------------
    def refresh_models(self) -> None:
        self.model_box.blockSignals(True)
        self.model_box.clear()
        models = chats.chat_models(self.ctx)
        current = chats.choose_default_model(self.ctx, models)
        for entry in models:
            meta = entry.metadata
            label = (f"{entry.name} · {meta.get('quantization', '?')} · "
                     f"{meta.get('file_size', 0) / 1e6:,.0f} MB · {meta.get('architecture', '?')}")
            if not entry.exists:
                label += " · file missing"
            self.model_box.addItem(label, entry.path)
            self.model_box.setItemData(self.model_box.count() - 1, f"{label}\n{entry.path}",
                                       Qt.ItemDataRole.ToolTipRole)
        add_remote_items(self.model_box, self.ctx)  # "Remote: MODEL @ HOST", "Remote server…"
        self.model_box.addItem("Open GGUF file…", OPEN_FILE)
        index = self.model_box.findData(current) if current else -1
        self.model_box.setCurrentIndex(index if index >= 0 else self.model_box.count() - 1)
        self.model_box.blockSignals(False)
        self._describe_model()

    def _describe_model(self, prefix: str = "") -> None:
        path = self.ctx.settings.get("last_model")
        self.remote_marker.refresh(self.ctx, self.current_id)
        if is_remote_ref(path):
            self.model_status.show_text(prefix or remote_status(path))
            return
        entry = chats.model_entry(self.ctx, path)
        if entry is None and path:
            # Chosen elsewhere (CLI, settings) and joining the library in the background.
            self.model_status.show_text(prefix or f"{Path(path).name}: loads when you send "
                                        "a message.")
            return
        if entry is None:
            # Until the library has been read off-thread, say nothing rather than flash
            # "no model" on a first run whose starter model is being registered.
            known = self.start_panel.view is not None
            self.model_status.show_text(prefix or ("No model chosen." if known else ""))
            return
        notes = [prefix] if prefix else []
        model = self.service.model
        loaded = model is not None and model.path == entry.path and self.ctx.engine.loaded
        if loaded and model:
            notes.append(f"Loaded, context {model.n_ctx}: {model.gpu_plan}.")
            if model.warning:
                notes.append(model.warning)  # where the model status shows, not in a log
        else:
            notes.append("Loads when you send a message.")
        if entry.source == "starter":
            notes.append(starter_note(entry.path))
        elif entry.is_base_model:
            notes.append("Base model (no chat template): it continues text rather than "
                         "following instructions.")
        self.model_status.show_text(" ".join(notes))

    def _model_chosen(self, index: int) -> None:
        path = self.model_box.itemData(index)
        if path == OPEN_FILE:
            self.open_model_file()
            return
        if path == REMOTE_ITEM:
            self.refresh_models()  # the picker goes back to the model in use
            open_remote_dialog(self)
            return
        self.load_model(path)

    def open_model_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()),
                                                "GGUF models (*.gguf)")
        if not chosen:
            self.refresh_models()
            return
        self.load_model(chosen)

    def load_model(self, path: str, status: str | None = None) -> None:
        if self.generating:
            self.show_error("Stop the current reply before switching models.", BUSY)
            self.refresh_models()
            return
        self.clear_error()
        self._load_label = f"Loading {Path(path).name}"
        self.model_status.show_text(status or f"{self._load_label}…")
        self._set_loading(True)

        def done(_: Any) -> None:
            self._set_loading(False)
            self._loaded_with = self._wanted(path)
            if self.current_id is not None and self.service.model is not None:
                chats.set_model(self.ctx, self.current_id, self.service.model.path)
            self.refresh_models()
            self._show_start_if_empty()

        def failed(exc: BaseException) -> None:
            self._set_loading(False)
            self.refresh_models()
            self.show_error(exc)

        run_in_background(self.service.load_model, path, on_done=done, on_error=failed)

    def _set_loading(self, loading: bool) -> None:
        self.loading = loading
        if not loading:
            self._load_label = ""
        self.model_box.setEnabled(not loading and not self.generating)
        self.send_button.setEnabled(not loading and not self.generating)
        if not loading:
            self.clear_error(BUSY)

    def _wanted(self, path: str) -> dict[str, Any]:
        return {"path": path, **chats.wanted_load(self.ctx, path)}

    def _library_changed(self) -> None:
        self.refresh_models()
        self._show_start_if_empty()
        self._check_reload()

    def _check_reload(self) -> None:
        """Per-model or app defaults changed (context, GPU layers): reload the loaded model
        with them now, in the background, and say so, instead of keeping the old ones."""
        model = self.service.model
        if model is None or not self.ctx.engine.loaded:
            return
        if self.generating or self.loading:
            self._reload_pending = True
            return
        self._reload_pending = False
        if self._loaded_with is None or self._loaded_with.get("path") != model.path:
            self._loaded_with = self._wanted(model.path)
        reason = chats.reload_reason(self.ctx, model, self._loaded_with)
        if not reason:
            return
        self._load_label = f"Reloading {model.info.name or Path(model.path).name} with {reason}"
        self.model_status.show_text(f"{self._load_label}…")
        self._set_loading(True)
        path = model.path

        def done(_: Any) -> None:
            self._set_loading(False)
            self._loaded_with = self._wanted(path)
            self._describe_model(f"Reloaded with {reason}.")
            self._update_meter()

        def failed(exc: BaseException) -> None:
            self._set_loading(False)
            self._describe_model()
            self.show_error(exc)

        run_in_background(chats.reload_model, self.ctx, self.service, on_done=done,
                          on_error=failed)

    # --- the empty area and first run ------------------------------------------------
    def _start_view_ready(self, view: chats.StartView) -> None:
        self.start_panel.show_view(view)
        if not view.has_model:
            self.model_status.show_text("No model yet: download the recommended one below, "
                                        "or open a GGUF file.")
        else:
            self.refresh_models()

    def _show_start_if_empty(self) -> None:
        """After a download or an added model: the start panel becomes "start a chat"."""
        if self.start_panel.first_run and chats.chat_models(self.ctx):
            self.start_panel.show_view(chats.StartView(True))

    def download_recommended(self, entry: Any) -> None:
        """One click on the start panel: the app's download queue fetches the model (the
        Models window shows the same job), and the picker takes it when it is done."""
        job = self.ctx.downloads.add(entry.repo, entry.model_file())
        self.start_panel.show_download(job)

    def _download_changed(self, job: Any) -> None:
        self.start_panel.show_download(job)
        self._paused_downloads()

    def _paused_downloads(self) -> None:
        unfinished = self.ctx.has_unfinished_downloads()
        text = "Models… (paused downloads)" if unfinished and not (
            self.models_page is not None and self.models_page.isVisible()) else "Models…"
        if text != self.models_button.text():
            self.models_button.set_full_text(text)

    # --- conversations ---------------------------------------------------------------
    def refresh_conversations(self) -> None:
        query = self.sidebar.search.text().strip()
        self.sidebar.set_conversations(chats.list_conversations(self.ctx, query),
                                       self.current_id, query)
        self.sidebar.model.set_busy(self.streaming_id)

    def _show_empty(self) -> None:
        self.stack.setCurrentWidget(self.start_panel)
        self._update_meter([])
        self.context_meter.hide()  # no chat, nothing used

    def _leave_current(self, next_id: int | None) -> None:
        """Before showing another chat: the reply view stops drawing (the reply goes on),
        and a chat left without a single message is not kept as an empty "New chat"."""
        previous = self.current_id
        if previous is not None and previous == self.streaming_id:
            self.chat_view.end_stream(None)
        if previous is not None and previous != next_id and previous != self.streaming_id:
            chats.discard_if_empty(self.ctx, previous)
        self.file_chips.clear()
        self.clear_error()
        self.editing = False

    def new_chat(self) -> None:
        self._leave_current(None)
        self.current_id = None
        self.chat_view.clear()
        self._show_empty()
        self.refresh_conversations()
        self._update_sources_button()
        self.composer.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        if conversation_id != self.current_id:
            self._leave_current(conversation_id)
        self.current_id = conversation_id
        self.ctx.settings.set("last_conversation", conversation_id)
        messages = chats.messages(self.ctx, conversation_id)
        if conversation_id == self.streaming_id:
            self._show_live(messages)
        else:
            self.chat_view.set_messages(messages)
        self.stack.setCurrentWidget(self.chat_view)
        self._update_meter(messages)
        self.context_meter.show()
        self._update_sources_button()
        self.refresh_conversations()
        interrupted = [m for m in messages if m.state == "interrupted"]
        if interrupted and interrupted[-1] is messages[-1]:
            self.chat_view.set_notice("The last reply was cut off when Hearth closed. "
                                      "Continue it from where it stopped, or Regenerate it.")

    def _show_live(self, messages: list[Message]) -> None:
        """Back on the chat whose reply is being written: what is saved, then the reply so
        far, streaming on."""
        shown = [m for m in messages if m.state != "streaming"]
        self.chat_view.set_messages(shown)
        self.chat_view.begin_stream(Message(0, self.streaming_id or 0, "assistant", "",
                                            "streaming", time.time()))
        if self._live_reasoning:
            self.chat_view.append_reasoning(self._live_reasoning)
            self.chat_view.reasoning_since = self._thinking_since  # the count goes on
        if self._live_text:
            self.chat_view.append(self._live_text)

    def rename_conversation(self, conversation_id: int) -> None:
        current = chats.conversation(self.ctx, conversation_id).title
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=current)
        if not ok:
            return
        try:
            chats.rename(self.ctx, conversation_id, title)
        except HearthError as exc:
            self.show_error(exc)
            return
        self.refresh_conversations()

    def export_conversation(self, conversation_id: int, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export chat", str(Path.home() / chats.export_name(self.ctx,
                                                                         conversation_id)),
                "Markdown (*.md);;JSON (*.json)")
            if not path:
                return
        try:
            written = chats.export(self.ctx, conversation_id, path)
        except HearthError as exc:
            self.show_error(exc)
            return
        self.chat_view.set_notice(f"Exported to {written}")

    def confirm_delete(self, title: str) -> bool:
        """Ask before deleting; the safe answer (No) is the default, so Enter keeps the chat."""
        box = QMessageBox(QMessageBox.Icon.Question, "Delete chat",
                          f"Delete “{title}” and all its messages? This cannot be undone.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setEscapeButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.button(QMessageBox.StandardButton.No).setText("Keep")
        self._confirm_box = box  # reachable by tests driving the real dialog
        return box.exec() == QMessageBox.StandardButton.Yes

    def delete_conversation(self, conversation_id: int, confirm: bool = True) -> None:
        if conversation_id == self.streaming_id:
            self.show_error("Stop the reply (Esc) before deleting this chat.", BUSY)
            return
        title = chats.conversation(self.ctx, conversation_id).title or "this chat"
        if confirm and not self.confirm_delete(title):
            return
        self.service.delete_conversation(conversation_id)
        if conversation_id == self.current_id:
            self.current_id = None
            self.new_chat()
        self.refresh_conversations()

    def open_models(self) -> None:
        if self.models_page is None:
            from desktop.ui.models_page import ModelsPage

            self.models_page = ModelsPage(self.ctx, self)
        self.models_page.show()
        self.models_page.raise_()
        self.models_button.set_full_text("Models…")

    def documents_page_instance(self) -> Any:
        if self.documents_page is None:
            from desktop.ui.documents_page import DocumentsPage

            self.documents_page = DocumentsPage(self.ctx, self)
            self.documents_page.collections_changed.connect(self._update_sources_button)
        return self.documents_page

    def open_documents(self) -> None:
        self.documents_page_instance()
        self.documents_page.refresh()
        self.documents_page.show()
        self.documents_page.raise_()

    def _ensure_conversation(self) -> int:
        if self.current_id is None:
            conversation = self.service.new_conversation()
            self.current_id = conversation.id
            self.ctx.settings.set("last_conversation", conversation.id)
            self.chat_view.clear()
            self.stack.setCurrentWidget(self.chat_view)
            self.context_meter.show()
            self.refresh_conversations()
        return self.current_id

    # --- document sources ------------------------------------------------------------
    def _fill_sources_menu(self) -> None:
        self.sources_menu.clear()
        choices = chats.collection_choices(self.ctx, self.current_id)
        if not choices:
            action = self.sources_menu.addAction("No collections yet: open Documents…")
            action.triggered.connect(self.open_documents)
            return
        for c in choices:
            action = self.sources_menu.addAction(f"{c['name']} ({c['files']} files)")
            action.setCheckable(True)
            action.setChecked(c["attached"])
            action.toggled.connect(lambda on, cid=c["id"]: self.set_collection(cid, on))

    def set_collection(self, collection_id: int, attached: bool) -> None:
        chats.set_collection(self.ctx, self._ensure_conversation(), collection_id, attached)
        self._update_sources_button()

    def _update_sources_button(self) -> None:
        names = chats.source_names(self.ctx, self.current_id)
        self.sources_button.set_full_text("Answer from: " + (", ".join(names) or "none"))

    def show_source(self, source: dict) -> None:
        from desktop.ui.documents_page import PassageDialog

        PassageDialog(self.ctx, source, self).exec()

    # --- dropped files ---------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self.drop_highlight.show_over()

    def dragLeaveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.drop_highlight.hide()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        self.drop_highlight.hide()
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped(paths)

    def files_dropped(self, paths: list[str]) -> None:
        self.attach_files(paths)

    def attach_files(self, paths: list[str]) -> None:
        """Files dropped on a chat are indexed for that chat only (by the app's indexer)."""
        from desktop.ui.bridge import app_signals

        conversation = self._ensure_conversation()
        collection = chats.drop_collection(self.ctx, conversation)
        chips = self.file_chips.add(paths)
        self._update_sources_button()
        signals = app_signals(self.ctx)
        job = self.ctx.indexer.submit(collection, paths, reason="chat")

        def heard(kind: str, finished: Any) -> None:
            if finished is not job or kind not in ("finished", "failed"):
                return
            signals.index_event.disconnect(heard)
            errors = list(job.state.errors) if kind == "finished" else []
            for chip in chips:
                problem = next((why for where, why in errors
                                if where == chip.path or Path(where).name == chip.name), None)
                if kind == "failed":
                    chip.set_state("not read", "error")
                elif problem is not None:
                    chip.set_state(f"not read: {problem}", "error")
                else:
                    chip.set_state("ready", "good")
            if kind == "failed":
                self.show_error(job.error or HearthError("Indexing failed."))
            self._update_sources_button()

        signals.index_event.connect(heard)
        if job.done.is_set():  # finished before we listened
            heard("finished" if job.error is None else "failed", job)

    # --- chat settings ---------------------------------------------------------------
    def edit_chat_settings(self) -> None:
        system, sampling = chats.chat_settings(self.ctx, self.service, self.current_id)
        if self.current_id is not None:  # the chat's thinking switch and effort, if set
            own = chats.conversation(self.ctx, self.current_id).settings
            sampling.update({k: own[k] for k in ("thinking", "reasoning_effort") if k in own})
        dialog = ChatSettingsDialog(system, sampling, self, thinking=self.thinking_controls())
        try:
            if dialog.exec() != ChatSettingsDialog.DialogCode.Accepted:
                return
            self.apply_chat_settings(*dialog.values(),
                                     make_default=dialog.make_default.isChecked())
        finally:
            dialog.deleteLater()  # each opening made a new one; none stays behind

    def thinking_controls(self) -> dict[str, bool] | None:
        """The thinking controls the current chat's model offers (None: no model loaded, or
        the chat belongs to another one, whose template is not read here)."""
        model = self.service.model
        if model is None:
            return None
        chat = chats.conversation(self.ctx, self.current_id) if self.current_id else None
        if chat is not None and chat.model_path and chat.model_path != model.path:
            return None
        return self.service.thinking_controls(model)

    def apply_chat_settings(self, system: str, sampling: dict[str, Any],
                            make_default: bool = False) -> None:
        chats.save_chat_settings(self.ctx, self.current_id, system, sampling, make_default)

    def _update_meter(self, messages: list[Message] | None = None) -> None:
        self.remote_marker.refresh(self.ctx, self.current_id)  # another chat, or a reply
        if messages is None:
            messages = chats.messages(self.ctx, self.current_id) if self.current_id else []
        model = self.service.model
        n_ctx = model.n_ctx if model else int(self.ctx.settings.get("n_ctx") or 4096)
        used = 0
        for message in reversed(messages):
            if message.role == "assistant" and message.prompt_tokens:
                used = message.prompt_tokens + (message.completion_tokens or 0)
                break
        self.context_meter.show_usage(used, n_ctx)

    # --- replies -------------------------------------------------------------------
    def send(self, text: str) -> None:
        text = text.strip()
        if not text and not self.image_tray.paths:
            return
        if self.generating:
            where = "" if self.streaming_id == self.current_id else " in another chat"
            self.show_error(f"A reply is still being written{where}: wait for it or press "
                            "Stop (Esc).", BUSY)
            return
        if self.loading:
            self.show_error("The model is loading: send again in a moment.", BUSY)
            return
        if not self.ctx.settings.get("last_model"):
            self.show_error("Choose a model first: pick one above or open a GGUF file.")
            return
        images = image_attachments.images_for_send(self)
        if images is None:
            return  # the model cannot see them: said why, the message stays in the box
        self.clear_error()
        self._ensure_conversation()
        self.composer.clear()
        editing, self.editing = self.editing, False
        if editing:
            # The last user message and its reply are replaced by the edited text.
            self.chat_view.set_messages(self._messages_before_last_user())
        sent = self.chat_view.add_message(Message(0, self.current_id or 0, "user", text, "done",
                                                  time.time()))
        image_attachments.show_on_message(sent, images)
        self.stack.setCurrentWidget(self.chat_view)
        job = self.service.edit_last_user_message if editing else \
            image_attachments.send_job(self.service, images)
        self._run_reply(job, self.current_id, text)

    def _messages_before_last_user(self) -> list[Message]:
        messages = chats.messages(self.ctx, self.current_id) if self.current_id else []
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        return messages[: users[-1]] if users else messages

    def regenerate(self, reply_id: int | None = None) -> None:
        """A new version of the last reply (or of `reply_id`); the old one is kept (‹ 1/2 ›)."""
        if self.generating or self.current_id is None:
            return
        messages = chats.messages(self.ctx, self.current_id)
        if reply_id is not None and any(m.id == reply_id for m in messages):
            messages = messages[:[m.id for m in messages].index(reply_id)]
        while messages and messages[-1].role == "assistant":
            messages.pop()
        self.chat_view.set_messages(messages)
        if reply_id is None:
            self._run_reply(self.service.regenerate, self.current_id)
        else:
            self._run_reply(self.service.regenerate_reply, self.current_id, reply_id)

    def continue_reply(self) -> None:
        if self.generating or self.current_id is None or not self.chat_view.widgets:
            return
        self.chat_view.set_notice(None)
        self._run_reply(self.service.continue_reply, self.current_id, resume=True)

    def edit_last(self, text: str) -> None:
        if self.generating:
            return
        self.editing = True
        self.composer.setPlainText(text)
        self.composer.setFocus()

    def _run_reply(self, job: Any, *args: Any, resume: bool = False) -> None:
        self.generating = True
        self.streaming_id = self.current_id
        self.stop_button.setEnabled(True)
        self.send_button.setEnabled(False)
        self.model_box.setEnabled(False)
        self._live_reasoning, self._thinking_since = "", None
        if resume:
            self._live_text = self.chat_view.widgets[-1].message.content
            self._live_reasoning = self.chat_view.widgets[-1].message.reasoning or ""
            self.chat_view.resume_stream()
        else:
            self._live_text = ""
            placeholder = Message(0, self.current_id or 0, "assistant", "", "streaming",
                                  time.time())
            self.chat_view.begin_stream(placeholder)
        self._first_piece = True
        self.refresh_conversations()
        if "on_reasoning" in inspect.signature(job).parameters:
            # A reasoning model's thinking reaches the view beside the text (throttled alike).
            job = functools.partial(job, on_reasoning=self.reasoning_arrived.emit)
        run_in_background(job, *args, self.text_arrived.emit,
                          on_done=self._reply_done, on_error=self._reply_failed)

    def edit_message(self, message_id: int, text: str) -> None:
        """Any user message edited in place: a new version of it, and a new reply."""
        if self.generating or self.loading or self.current_id is None:
            self.show_error("A reply is still being written: wait for it or press Stop (Esc).",
                            BUSY)
            return
        self.clear_error()
        self.chat_view.cut_at(message_id)
        self.chat_view.add_message(Message(0, self.current_id, "user", text, "done", time.time()))
        self._run_reply(self.service.edit_message, self.current_id, message_id, text)

    def show_version(self, message_id: int) -> None:
        """‹ › on a message: that version and what was written after it."""
        if self.current_id is None or self.streaming_id == self.current_id:
            return
        self.chat_view.set_messages(self.service.switch_version(self.current_id, message_id))
        self._update_meter()

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        if self.generating and self.current_id == self.streaming_id:
            self.chat_view.show_progress(stage, done, total)
        if stage == "load" and total:
            # A load from the picker, a reload or the first reply: the status line counts.
            label = self._load_label or \
                f"Loading {Path(self.ctx.settings.get('last_model') or 'the model').name}"
            self.model_status.show_text(f"{label}… {100 * done // total}%")

    def _on_text(self, piece: str) -> None:
        self._live_text += piece
        if self.current_id == self.streaming_id:
            self.chat_view.append(piece)
        if self._first_piece:
            self._first_piece = False
            self.refresh_conversations()  # the new chat's title is saved by now

    def _on_reasoning(self, piece: str) -> None:
        self._live_reasoning += piece
        if self._thinking_since is None:
            self._thinking_since = time.monotonic()
        if self.current_id == self.streaming_id:
            self.chat_view.append_reasoning(piece)
        if self._first_piece:
            self._first_piece = False
            self.refresh_conversations()  # the new chat's title is saved by now

    def _finish(self) -> int | None:
        finished, self.streaming_id = self.streaming_id, None
        self.generating = False
        self._live_text = ""
        self._live_reasoning, self._thinking_since = "", None
        self.stop_button.setEnabled(False)
        self.send_button.setEnabled(not self.loading)
        self.model_box.setEnabled(not self.loading)
        self.clear_error(BUSY)  # "a reply is still being written" is no longer true
        if self.service.model is not None and (
                self._loaded_with is None or self._loaded_with["path"] != self.service.model.path):
            self._loaded_with = self._wanted(self.service.model.path)  # loaded by this reply
        self._describe_model()
        return finished

    def announce(self, text: str) -> None:
        """Tell screen readers (a polite announcement, as a chat app's "reply finished")."""
        self.last_announcement = text
        event = QAccessibleAnnouncementEvent(self.chat_view, text)
        QAccessible.updateAccessibility(event)

    def _reply_done(self, message: Message) -> None:
        finished = self._finish()
        title = chats.conversation(self.ctx, message.conversation_id).title or "the chat"
        self.announce(f"Reply finished: {title}" if message.state == "done" else
                      f"Reply stopped: {title}")
        on_screen = finished is not None and finished == self.current_id
        if on_screen:
            self.chat_view.end_stream(message)
        if self.model_box.currentData() != self.ctx.settings.get("last_model"):
            self.refresh_models()  # a model first used by this reply joins the picker
        if on_screen and self.current_id is not None:
            self._update_meter()
            notices = []
            if self.service.context_start.get(self.current_id):
                notices.append("Older messages are no longer in the model's context (it is "
                               "full); the model sees only the more recent part of this chat.")
            if chats.source_names(self.ctx, self.current_id) and not message.sources:
                notices.append("No passage in the attached documents matched this question.")
            self.chat_view.set_notice(" ".join(notices) or None)
        self.refresh_conversations()
        if self._reload_pending:
            self._check_reload()

    def _reply_failed(self, exc: BaseException) -> None:
        finished = self._finish()
        if finished is not None and finished == self.current_id:
            self.chat_view.end_stream(None)
            # Show what was kept (the partial reply is saved as failed/stopped).
            self.chat_view.set_messages(chats.messages(self.ctx, finished))
        self.show_error(exc)
        if isinstance(exc, EngineCrashed):
            self.error_label.show_text(exc.message + " The partial reply was kept; send again "
                                       "to restart the model.", "error")
        self.refresh_conversations()
        if self._reload_pending:
            self._check_reload()

    def stop(self) -> None:
        if self.generating:
            self.service.stop()

    # --- theme and closing -----------------------------------------------------------
    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            # Back from the Models or Settings window: defaults saved there apply now.
            self._check_reload()
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            # Labels given a tone keep their colours; give them the new theme's.
            self.model_status.show_text(self.model_status.full_text(), self.model_status.tone)
            if self.error_box.isVisible():
                self.error_label.show_text(self.error_label.full_text(), "error")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self.generating:
            self.service.stop()
        elif self.current_id is not None and chats.discard_if_empty(self.ctx, self.current_id):
            self.current_id = None
        self._remember_sidebar()
        self.ctx.settings.values["window_geometry"] = \
            self.saveGeometry().toBase64().data().decode("ascii")
        self.ctx.settings.values["last_conversation"] = self.current_id
        self.ctx.settings.save()
        super().closeEvent(event)
