"""The main window: the chat list (sidebar.py), the toolbar (toolbar.py), the conversation
(chat_view.py) or the start panel (first_run.py), and the message box.

The window builds and lays out those widgets, shows errors, restores and saves its place,
and hands each concern to a part it creates (each holds the window, reads its widgets):
- window_model.py (ModelControl): the model picker and status line, loading a model, and
  reloading it when its defaults change;
- window_chats.py (ChatList): the sidebar's list and which chat is shown; new, open,
  rename, export, delete;
- window_replies.py (Replies): send, regenerate, continue, edit, versions, the streaming
  reply, Stop, the screen-reader announcement and the context meter;
- window_documents.py (ChatDocuments): the collections a chat answers from, a citation's
  passage, files dropped or attached on a chat.
Its public methods and state (send, open_conversation, generating, loading…) are one-line
delegates to those parts, for the shortcuts, the other UI modules and the tests.

The window calls services (ChatService, desktop/core/chat/conversations.py), never the
store. A reply runs on a worker thread and belongs to its chat, not to what is on screen:
the user may read other chats while it is written; it goes on, is saved, and shows live
again when its chat is opened.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat import conversations as chats
from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import HearthError, error_text
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
from desktop.ui.remote_panel import RemoteMarker
from desktop.ui.sidebar import Sidebar
from desktop.ui.tasks import run_in_background
from desktop.ui.toolbar import ChatToolbar, ContextMeter
from desktop.ui.widgets import StatusLine
from desktop.ui.window_chats import ChatList
from desktop.ui.window_documents import ChatDocuments
from desktop.ui.window_model import ModelControl
from desktop.ui.window_replies import Replies


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
        self.current_id: int | None = None  # the chat on screen (every part reads it)
        self._error_details = ""
        self._error_kind: str | None = None
        # The parts (see the module docstring); they read the widgets _build makes.
        self.model_control = ModelControl(self)
        self.chat_list = ChatList(self)
        self.replies = Replies(self)
        self.chat_documents = ChatDocuments(self)
        self.models_page: Any = None
        self.documents_page: Any = None
        self.setAcceptDrops(True)
        self.setWindowTitle("Hearth")
        self.resize(1100, 760)
        self._build()
        self.text_arrived.connect(self.replies.on_text)
        self.reasoning_arrived.connect(self.replies.on_reasoning)
        self.progress_arrived.connect(self.replies.on_progress)
        self.service.on_progress = self.progress_arrived.emit
        self.shortcuts = install_shortcuts(self)
        set_focus_order(self)
        self._observe_app()
        self._restore()

    # --- layout ----------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = Sidebar()
        chat_list = self.chat_list
        self.sidebar.new_requested.connect(chat_list.new_chat)
        self.sidebar.selected.connect(chat_list.open_conversation)
        self.sidebar.rename_requested.connect(chat_list.rename_conversation)
        self.sidebar.delete_requested.connect(chat_list.delete_conversation)
        self.sidebar.export_requested.connect(chat_list.export_conversation)
        self.sidebar.search_changed.connect(lambda _: chat_list.refresh_conversations())

        self.toolbar = ChatToolbar()
        self.model_box = self.toolbar.model_box
        self.model_box.activated.connect(self.model_control.model_chosen)
        self.models_button = self.toolbar.models_button
        self.models_button.clicked.connect(self.open_models)
        self.documents_button = self.toolbar.documents_button
        self.documents_button.clicked.connect(self.open_documents)
        self.sources_button = self.toolbar.sources_button
        self.sources_menu = self.toolbar.sources_menu
        self.sources_menu.aboutToShow.connect(self.chat_documents.fill_sources_menu)
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
        self.start_panel.open_file_requested.connect(self.model_control.open_model_file)
        self.start_panel.browse_requested.connect(self.open_models)
        self.empty = self.start_panel  # what older callers and tests call the empty page
        self.chat_view = ChatView()
        self.chat_view.setAccessibleName("Conversation")
        replies = self.replies
        self.chat_view.regenerate_requested.connect(replies.regenerate)
        self.chat_view.edit_requested.connect(replies.edit_last)
        self.chat_view.source_requested.connect(self.chat_documents.show_source)
        self.chat_view.continue_requested.connect(replies.continue_reply)
        self.chat_view.edit_submitted.connect(replies.edit_message)
        self.chat_view.version_requested.connect(replies.show_version)
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
        self.composer.submitted.connect(replies.send)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setAccessibleName("Send")
        self.send_button.setToolTip("Send the message (Enter)")
        self.send_button.clicked.connect(lambda: replies.send(self.composer.toPlainText()))
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop the reply")
        self.stop_button.setToolTip("Stop the reply (Esc); what was written is kept")
        self.stop_button.clicked.connect(replies.stop)
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
        signals.library_changed.connect(self.model_control.library_changed)
        signals.settings_changed.connect(self.model_control.check_reload)
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
            self.chat_list.show_empty()
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
            self.documents_page.collections_changed.connect(
                self.chat_documents.update_sources_button)
        return self.documents_page

    def open_documents(self) -> None:
        self.documents_page_instance()
        self.documents_page.refresh()
        self.documents_page.show()
        self.documents_page.raise_()

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

    # --- the parts' public faces (shortcuts, other UI modules and tests call these) ---
    @property
    def generating(self) -> bool:
        return self.replies.generating

    @generating.setter
    def generating(self, value: bool) -> None:
        self.replies.generating = value

    @property
    def streaming_id(self) -> int | None:
        return self.replies.streaming_id

    @streaming_id.setter
    def streaming_id(self, value: int | None) -> None:
        self.replies.streaming_id = value

    @property
    def editing(self) -> bool:
        return self.replies.editing

    @editing.setter
    def editing(self, value: bool) -> None:
        self.replies.editing = value

    @property
    def last_announcement(self) -> str:
        return self.replies.last_announcement

    @property
    def loading(self) -> bool:
        return self.model_control.loading

    @loading.setter
    def loading(self, value: bool) -> None:
        self.model_control.loading = value

    # the model picker (window_model.py)
    def refresh_models(self) -> None:
        self.model_control.refresh_models()

    def _model_chosen(self, index: int) -> None:
        self.model_control.model_chosen(index)

    def open_model_file(self) -> None:
        self.model_control.open_model_file()

    def load_model(self, path: str, status: str | None = None) -> None:
        self.model_control.load_model(path, status)

    # the chat list (window_chats.py)
    def refresh_conversations(self) -> None:
        self.chat_list.refresh_conversations()

    def new_chat(self) -> None:
        self.chat_list.new_chat()

    def open_conversation(self, conversation_id: int) -> None:
        self.chat_list.open_conversation(conversation_id)

    def rename_conversation(self, conversation_id: int) -> None:
        self.chat_list.rename_conversation(conversation_id)

    def export_conversation(self, conversation_id: int, path: str | None = None) -> None:
        self.chat_list.export_conversation(conversation_id, path)

    def confirm_delete(self, title: str) -> bool:
        return self.chat_list.confirm_delete(title)

    def delete_conversation(self, conversation_id: int, confirm: bool = True) -> None:
        self.chat_list.delete_conversation(conversation_id, confirm)

    # replies (window_replies.py)
    def send(self, text: str) -> None:
        self.replies.send(text)

    def regenerate(self, reply_id: int | None = None) -> None:
        self.replies.regenerate(reply_id)

    def continue_reply(self) -> None:
        self.replies.continue_reply()

    def edit_last(self, text: str) -> None:
        self.replies.edit_last(text)

    def edit_message(self, message_id: int, text: str) -> None:
        self.replies.edit_message(message_id, text)

    def show_version(self, message_id: int) -> None:
        self.replies.show_version(message_id)

    def stop(self) -> None:
        self.replies.stop()

    def announce(self, text: str) -> None:
        self.replies.announce(text)

    # documents in the chat (window_documents.py)
    def set_collection(self, collection_id: int, attached: bool) -> None:
        self.chat_documents.set_collection(collection_id, attached)

    def _update_sources_button(self) -> None:
        self.chat_documents.update_sources_button()

    def show_source(self, source: dict) -> None:
        self.chat_documents.show_source(source)

    def files_dropped(self, paths: list[str]) -> None:
        # image_attachments.install replaces this on the window (images go to its tray).
        self.chat_documents.files_dropped(paths)

    def attach_files(self, paths: list[str]) -> None:
        self.chat_documents.attach_files(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        self.chat_documents.drag_entered(event)

    def dragLeaveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.chat_documents.drag_left()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = self.chat_documents.dropped_paths(event)
        if paths:
            self.files_dropped(paths)  # the window's, which image_attachments may wrap

    # --- theme and closing -----------------------------------------------------------
    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            # Back from the Models or Settings window: defaults saved there apply now.
            self.model_control.check_reload()
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
            bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.ctx.settings.values["last_conversation"] = self.current_id
        self.ctx.settings.save()
        super().closeEvent(event)
