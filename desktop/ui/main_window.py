"""The main window: sidebar of chats, model picker, chat view and composer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import paths
from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.errors import EngineCrashed, HearthError
from desktop.core.models.library import STARTER_NOTE
from desktop.core.settings import SAMPLING_DEFAULTS
from desktop.core.store.chats import Message
from desktop.ui.chat_settings import ChatSettingsDialog
from desktop.ui.chat_view import ChatView
from desktop.ui.composer import Composer
from desktop.ui.file_drop import FileDropTarget
from desktop.ui.sidebar import Sidebar
from desktop.ui.tasks import run_in_background

OPEN_FILE = "__open__"
EMPTY_NO_MODEL = (
    "<h2>Welcome to Hearth</h2>"
    "<p>Everything you type stays on this computer.</p>"
    "<p>There is no model yet. Click <b>Models…</b> above to download a recommended one (Hearth "
    "tells you which fit this computer), or choose <b>Open GGUF file…</b> in the model list to "
    "use a model you already have.</p>"
    "<p>Models from LM Studio, GPT4All, Jan or Ollama: <b>Models…</b> → <b>Installed</b> → "
    "<b>Find models from other apps</b> adds them without copying.</p>"
)
EMPTY_READY = "<h2>Start a conversation</h2><p>Type a message below. Enter sends.</p>"


class MainWindow(FileDropTarget, QMainWindow):
    text_arrived = Signal(str)  # emitted from the reply thread; queued onto the GUI thread

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.service = ChatService(ctx)
        self.current_id: int | None = None
        self.generating = False
        self.editing = False
        self._error_details = ""
        self.models_page: Any = None
        self.documents_page: Any = None
        self.setAcceptDrops(True)
        self.setWindowTitle("Hearth")
        self.resize(1100, 760)
        self._build()
        self.text_arrived.connect(self.chat_view.append)
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

        self.model_box = QComboBox()
        self.model_box.setMinimumWidth(200)
        self.model_box.setMaximumWidth(440)  # grows with the window so names are not cut
        self.model_box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_box.activated.connect(self._model_chosen)
        self.model_status = QLabel()
        self.model_status.setObjectName("model-status")
        self.model_status.setWordWrap(True)
        self.context_meter = QProgressBar()
        self.context_meter.setMinimumWidth(150)
        self.context_meter.setFormat("%v / %m tokens")
        self.context_meter.setMaximum(int(self.ctx.settings.get("n_ctx") or 4096))
        self.context_meter.setValue(0)
        self.context_meter.setToolTip("How much of the model's context this chat uses")
        self.models_button = QPushButton("Models…")
        self.models_button.setToolTip("Find, download and manage models")
        self.models_button.clicked.connect(self.open_models)
        if _paused_downloads(self.ctx.data_dir):
            # Downloads stopped by the last quit wait, paused, in the Models window.
            self.models_button.setText("Models… (paused downloads)")
        self.documents_button = QPushButton("Documents…")
        self.documents_button.setToolTip("Collections of your files, indexed on this computer")
        self.documents_button.clicked.connect(self.open_documents)
        self.sources_button = QToolButton()
        self.sources_button.setText("Answer from: none")
        self.sources_button.setToolTip("Document collections this chat answers from")
        self.sources_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.sources_button.setMaximumWidth(210)
        self.sources_menu = QMenu(self)
        self.sources_menu.aboutToShow.connect(self._fill_sources_menu)
        self.sources_button.setMenu(self.sources_menu)
        self.settings_button = QPushButton("Chat settings…")
        self.settings_button.setToolTip("System prompt and sampling for this chat")
        self.settings_button.clicked.connect(self.edit_chat_settings)
        top = QHBoxLayout()
        top.addWidget(self.model_box, 3)
        top.addWidget(self.models_button)
        top.addWidget(self.documents_button)
        top.addWidget(self.sources_button)
        top.addWidget(self.settings_button)
        top.addStretch(1)
        top.addWidget(self.context_meter)

        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.chat_view = ChatView()
        self.chat_view.regenerate_requested.connect(self.regenerate)
        self.chat_view.edit_requested.connect(self.edit_last)
        self.chat_view.source_requested.connect(self.show_source)
        self.chat_view.continue_requested.connect(self.continue_reply)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.chat_view)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color:#c0392b")
        self.copy_details = QPushButton("Copy details")
        self.copy_details.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self._error_details))
        error_row = QHBoxLayout()
        error_row.addWidget(self.error_label, 1)
        error_row.addWidget(self.copy_details)
        self.error_box = QWidget()
        self.error_box.setLayout(error_row)
        self.error_box.hide()

        self.composer = Composer()
        self.composer.submitted.connect(self.send)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(lambda: self.send(self.composer.toPlainText()))
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        compose_row = QHBoxLayout()
        compose_row.addWidget(self.composer, 1)
        compose_row.addLayout(buttons)

        right = QWidget()
        column = QVBoxLayout(right)
        column.addLayout(top)
        column.addWidget(self.model_status)
        column.addWidget(self.stack, 1)
        column.addWidget(self.error_box)
        column.addLayout(compose_row)

        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        QShortcut(QKeySequence.StandardKey.New, self, self.new_chat)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        QShortcut(QKeySequence.StandardKey.Find, self, self.sidebar.search.setFocus)

    def _restore(self) -> None:
        geometry = self.ctx.settings.get("window_geometry")
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        self.refresh_models()
        model = self.ctx.settings.get("last_model")
        if model and self.ctx.library.find(model) is None and Path(model).is_file():
            # A model chosen elsewhere (CLI, settings) joins the library; header read off-thread.
            run_in_background(self.ctx.library.add, model,
                              on_done=lambda _: self.refresh_models(), on_error=self.show_error)
        last = self.ctx.settings.get("last_conversation")
        self.refresh_conversations()
        ids = [c.id for c in self.sidebar.model.items]
        if last in ids:
            self.open_conversation(last)
        else:
            self._show_empty()
        if any(c["watch"] for c in self.ctx.documents.collections()):
            self.documents_page_instance()  # its folder watcher runs while the app runs
        if not self.ctx.library.list() and not self.ctx.settings.get("starter_registered"):
            self.model_status.setText("Preparing the starter model…")
            run_in_background(self.ctx.ensure_starter, on_done=lambda _: self.refresh_models(),
                              on_error=self.show_error)

    # --- errors --------------------------------------------------------------------
    def show_error(self, exc: BaseException | str) -> None:
        if isinstance(exc, HearthError):
            message, details = exc.message, exc.details
        elif isinstance(exc, BaseException):
            message = f"Something went wrong: {exc}"
            details = getattr(exc, "__traceback_text__", repr(exc))
        else:
            message, details = exc, ""
        self._error_details = f"{message}\n\n{details}".strip()
        self.error_label.setText(message)
        self.copy_details.setVisible(bool(details))
        self.error_box.show()

    def clear_error(self) -> None:
        self.error_box.hide()

    # --- models --------------------------------------------------------------------
    def refresh_models(self) -> None:
        self.model_box.blockSignals(True)
        self.model_box.clear()
        current = self.ctx.settings.get("last_model")
        chat_models = [e for e in self.ctx.library.list()
                       if not e.is_embedding]  # embedding models serve Documents, not chat
        latest = None if current else self.ctx.library.latest_chat_model(chat_models)
        if latest is not None:
            # Nothing chosen yet (say, right after the first download): take that model
            # rather than make the user pick the only sensible choice.
            current = latest.path
            self.ctx.settings.set("last_model", current)
        for entry in chat_models:
            meta = entry.metadata
            label = (f"{entry.name} · {meta.get('quantization', '?')} · "
                     f"{meta.get('file_size', 0) / 1e6:,.0f} MB · {meta.get('architecture', '?')}")
            if not entry.exists:
                label += " · file missing"
            self.model_box.addItem(label, entry.path)
            self.model_box.setItemData(self.model_box.count() - 1, entry.path,
                                       Qt.ItemDataRole.ToolTipRole)
        self.model_box.addItem("Open GGUF file…", OPEN_FILE)
        index = self.model_box.findData(current) if current else -1
        self.model_box.setCurrentIndex(index if index >= 0 else self.model_box.count() - 1)
        self.model_box.blockSignals(False)
        self._describe_model()
        if self.current_id is None:
            self._show_empty()

    def _describe_model(self) -> None:
        path = self.ctx.settings.get("last_model")
        entry = self.ctx.library.find(path) if path else None
        if entry is None:
            self.model_status.setText("No model chosen.")
            return
        notes = []
        if entry.source == "starter":
            notes.append(STARTER_NOTE)
        elif entry.is_base_model:
            notes.append("Base model (no chat template): it continues text rather than "
                         "following instructions.")
        model = self.service.model
        loaded = model is not None and model.path == entry.path
        notes.insert(0, f"Loaded: {model.gpu_plan}." if loaded and model else
                     "Loads when you send a message.")
        if loaded and model and model.warning:
            notes.insert(1, model.warning)  # where the model status shows, not in a log
        self.model_status.setText(" ".join(notes))

    def _model_chosen(self, index: int) -> None:
        path = self.model_box.itemData(index)
        if path == OPEN_FILE:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()),
                                                    "GGUF models (*.gguf)")
            if not chosen:
                self.refresh_models()
                return
            path = chosen
        self.load_model(path)

    def load_model(self, path: str) -> None:
        if self.generating:
            self.show_error("Stop the current reply before switching models.")
            self.refresh_models()
            return
        self.clear_error()
        self.model_status.setText(f"Loading {Path(path).name}…")
        self.model_box.setEnabled(False)

        def done(_: Any) -> None:
            self.model_box.setEnabled(True)
            if self.current_id is not None:
                self.ctx.chats.update_conversation(self.current_id, model_path=self.service.model.path)
            self.refresh_models()

        def failed(exc: BaseException) -> None:
            self.model_box.setEnabled(True)
            self.refresh_models()
            self.show_error(exc)

        run_in_background(self.service.load_model, path, on_done=done, on_error=failed)

    # --- conversations ---------------------------------------------------------------
    def refresh_conversations(self) -> None:
        query = self.sidebar.search.text().strip()
        items = self.ctx.chats.search(query) if query else self.ctx.chats.conversations()
        self.sidebar.set_conversations(items, self.current_id)

    def _show_empty(self) -> None:
        has_model = bool(self.ctx.library.list()) or bool(self.ctx.settings.get("last_model"))
        self.empty.setText(EMPTY_READY if has_model else EMPTY_NO_MODEL)
        self.stack.setCurrentWidget(self.empty)
        self.context_meter.setValue(0)

    def new_chat(self) -> None:
        if self.generating:
            return
        self.current_id = None
        self.chat_view.clear()
        self._show_empty()
        self.refresh_conversations()
        self.sidebar.view.clearSelection()
        self._update_sources_button()
        self.composer.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        if self.generating and conversation_id != self.current_id:
            self.refresh_conversations()  # keep the streaming chat selected
            return
        self.current_id = conversation_id
        self.ctx.settings.set("last_conversation", conversation_id)
        messages = self.ctx.chats.messages(conversation_id)
        self.chat_view.set_messages(messages)
        self.stack.setCurrentWidget(self.chat_view)
        self._update_meter(messages)
        self._update_sources_button()
        self.refresh_conversations()
        interrupted = [m for m in messages if m.state == "interrupted"]
        if interrupted and interrupted[-1] is messages[-1]:
            self.chat_view.set_notice("The last reply was cut off when Hearth closed. "
                                      "Continue it from where it stopped, or Regenerate it.")

    def rename_conversation(self, conversation_id: int) -> None:
        current = self.ctx.chats.conversation(conversation_id).title
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=current)
        if ok and title.strip():
            self.ctx.chats.update_conversation(conversation_id, title=title.strip())
            self.refresh_conversations()

    def export_conversation(self, conversation_id: int, path: str | None = None) -> None:
        from desktop.core.store.export import write_export

        if path is None:
            title = self.ctx.chats.conversation(conversation_id).title or "chat"
            name = "".join(c if c.isalnum() or c in " -_" else "_" for c in title)[:60].strip()
            path, _ = QFileDialog.getSaveFileName(
                self, "Export chat", str(Path.home() / f"{name or 'chat'}.md"),
                "Markdown (*.md);;JSON (*.json)")
            if not path:
                return
        try:
            written = write_export(self.ctx.chats, conversation_id, path)
        except HearthError as exc:
            self.show_error(exc)
            return
        self.chat_view.set_notice(f"Exported to {written}")

    def delete_conversation(self, conversation_id: int, confirm: bool = True) -> None:
        title = self.ctx.chats.conversation(conversation_id).title or "this chat"
        if confirm and QMessageBox.question(
            self, "Delete chat", f"Delete “{title}” and all its messages? This cannot be undone.",
        ) != QMessageBox.StandardButton.Yes:
            return
        if self.generating and conversation_id == self.current_id:
            self.show_error("Stop the reply before deleting this chat.")
            return
        self.service.delete_conversation(conversation_id)
        if conversation_id == self.current_id:
            self.new_chat()
        self.refresh_conversations()

    def open_models(self) -> None:
        if self.models_page is None:
            from desktop.ui.models_page import ModelsPage

            self.models_page = ModelsPage(self.ctx, self)
            self.models_page.library_changed.connect(self.refresh_models)
        self.models_page.show()
        self.models_page.raise_()
        self.models_button.setText("Models…")

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
            self.refresh_conversations()
        return self.current_id

    def _fill_sources_menu(self) -> None:
        self.sources_menu.clear()
        attached = set(self.ctx.documents.attached(self.current_id)) if self.current_id else set()
        collections = self.ctx.documents.collections()
        if not collections:
            action = self.sources_menu.addAction("No collections yet: open Documents…")
            action.triggered.connect(self.open_documents)
            return
        for c in collections:
            action = self.sources_menu.addAction(f"{c['name']} ({c['files']} files)")
            action.setCheckable(True)
            action.setChecked(c["id"] in attached)
            action.toggled.connect(lambda on, cid=c["id"]: self.set_collection(cid, on))

    def set_collection(self, collection_id: int, attached: bool) -> None:
        conversation = self._ensure_conversation()
        if attached:
            self.ctx.documents.attach(conversation, collection_id)
        else:
            self.ctx.documents.detach(conversation, collection_id)
        self._update_sources_button()

    def _update_sources_button(self) -> None:
        names = []
        if self.current_id is not None:
            by_id = {c["id"]: c["name"] for c in self.ctx.documents.collections(include_chat=True)}
            for cid in self.ctx.documents.attached(self.current_id):
                name = by_id.get(cid, "")
                names.append("files dropped here" if name.startswith("chat:") else name)
        self.sources_button.setText("Answer from: " + (", ".join(names) if names else "none"))

    def show_source(self, source: dict) -> None:
        from desktop.ui.documents_page import PassageDialog

        PassageDialog(self.ctx, source, self).exec()

    def files_dropped(self, paths: list[str]) -> None:
        self.attach_files(paths)

    def attach_files(self, paths: list[str]) -> None:
        """Files dropped on a chat are indexed for that chat only."""
        from desktop.ui.documents_page import IndexRunner

        conversation = self._ensure_conversation()
        collection = self.ctx.documents.chat_collection(conversation)
        self.chat_view.set_notice(f"Reading {len(paths)} dropped item(s) for this chat…")
        self._update_sources_button()
        self.index_runner = getattr(self, "index_runner", None) or IndexRunner(self.ctx)

        def done(state: Any) -> None:
            problems = "; ".join(error for _, error in state.errors[:3])
            self.chat_view.set_notice(
                f"Ready: {state.indexed + state.skipped_unchanged} file(s) indexed for this chat."
                + (f" Problems: {problems}" if problems else ""))

        self.index_runner.start(collection, paths, done, self.show_error)

    def edit_chat_settings(self) -> None:
        if self.current_id is not None:
            conversation = self.ctx.chats.conversation(self.current_id)
            system, sampling = conversation.system_prompt, self.service.sampling(conversation)
        else:
            system = self.ctx.settings.get("system_prompt", "")
            sampling = {**SAMPLING_DEFAULTS, **self.ctx.settings.get("sampling", {})}
        dialog = ChatSettingsDialog(system, sampling, self)
        if dialog.exec() != ChatSettingsDialog.DialogCode.Accepted:
            return
        self.apply_chat_settings(*dialog.values(), make_default=dialog.make_default.isChecked())

    def apply_chat_settings(self, system: str, sampling: dict[str, Any],
                            make_default: bool = False) -> None:
        if self.current_id is not None:
            self.ctx.chats.update_conversation(self.current_id, system_prompt=system,
                                               settings=sampling)
        if make_default or self.current_id is None:
            self.ctx.settings.values["system_prompt"] = system
            self.ctx.settings.set("sampling", sampling)

    def _update_meter(self, messages: list[Message]) -> None:
        model = self.service.model
        n_ctx = model.n_ctx if model else int(self.ctx.settings.get("n_ctx") or 4096)
        used = 0
        for message in reversed(messages):
            if message.role == "assistant" and message.prompt_tokens:
                used = message.prompt_tokens + (message.completion_tokens or 0)
                break
        self.context_meter.setMaximum(n_ctx)
        self.context_meter.setValue(min(used, n_ctx))

    # --- replies -------------------------------------------------------------------
    def send(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if self.generating:
            self.show_error("A reply is still being written: wait for it or press Stop (Esc).")
            return
        if not self.ctx.settings.get("last_model"):
            self.show_error("Choose a model first: pick one above or open a GGUF file.")
            return
        self.clear_error()
        if self.current_id is None:
            conversation = self.service.new_conversation()
            self.current_id = conversation.id
            self.ctx.settings.set("last_conversation", conversation.id)
            self.chat_view.clear()
        self.composer.clear()
        editing, self.editing = self.editing, False
        if editing:
            # The last user message and its reply are replaced by the edited text.
            self.chat_view.set_messages(self._messages_before_last_user())
        now = time.time()
        self.chat_view.add_message(Message(0, self.current_id, "user", text, "done", now))
        self.stack.setCurrentWidget(self.chat_view)
        job = self.service.edit_last_user_message if editing else self.service.send
        self._run_reply(job, self.current_id, text)

    def _messages_before_last_user(self) -> list[Message]:
        messages = self.ctx.chats.messages(self.current_id) if self.current_id else []
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        return messages[: users[-1]] if users else messages

    def regenerate(self) -> None:
        if self.generating or self.current_id is None:
            return
        messages = self.ctx.chats.messages(self.current_id)
        while messages and messages[-1].role == "assistant":
            messages.pop()
        self.chat_view.set_messages(messages)
        self._run_reply(self.service.regenerate, self.current_id)

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
        self.stop_button.setEnabled(True)
        self.send_button.setEnabled(False)
        self.model_box.setEnabled(False)
        if resume:
            self.chat_view.resume_stream()
        else:
            placeholder = Message(0, self.current_id or 0, "assistant", "", "streaming",
                                  time.time())
            self.chat_view.begin_stream(placeholder)
        self.refresh_conversations()
        run_in_background(job, *args, self.text_arrived.emit,
                          on_done=self._reply_done, on_error=self._reply_failed)

    def _finish(self) -> None:
        self.generating = False
        self.stop_button.setEnabled(False)
        self.send_button.setEnabled(True)
        self.model_box.setEnabled(True)
        self._describe_model()

    def _reply_done(self, message: Message) -> None:
        self.chat_view.end_stream(message)
        self._finish()
        if self.model_box.currentData() != self.ctx.settings.get("last_model"):
            self.refresh_models()  # a model first used by this reply joins the picker
        if message.conversation_id == self.current_id:
            messages = self.ctx.chats.messages(self.current_id)
            self._update_meter(messages)
            start = self.service.context_start.get(self.current_id)
            notices = []
            if start:
                notices.append("Older messages are no longer in the model's context (it is "
                               "full); the model sees only the more recent part of this chat.")
            if self.ctx.documents.attached(self.current_id) and not message.sources:
                notices.append("No passage in the attached documents matched this question.")
            self.chat_view.set_notice(" ".join(notices) or None)
        self.refresh_conversations()

    def _reply_failed(self, exc: BaseException) -> None:
        self.chat_view.end_stream(None)
        self._finish()
        if self.current_id is not None:
            # Show what was kept (the partial reply is saved as failed/stopped).
            self.chat_view.set_messages(self.ctx.chats.messages(self.current_id))
        self.show_error(exc)
        if isinstance(exc, EngineCrashed):
            self.error_label.setText(exc.message + " The partial reply was kept; send again "
                                     "to restart the model.")
        self.refresh_conversations()

    def stop(self) -> None:
        if self.generating:
            self.service.stop()

    # --- closing -------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self.generating:
            self.service.stop()
        self.ctx.settings.values["window_geometry"] = bytes(
            self.saveGeometry().toBase64()).decode("ascii")
        self.ctx.settings.values["last_conversation"] = self.current_id
        self.ctx.settings.save()
        super().closeEvent(event)


def _paused_downloads(data_dir: Path) -> bool:
    """Whether the last run left unfinished downloads (read without importing the queue)."""
    try:
        return bool(json.loads(paths.downloads_path(data_dir).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False
