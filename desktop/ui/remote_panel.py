"""The remote engine in the window: the "Remote server (OpenAI-compatible)" dialog, the model
picker's "Remote: MODEL @ HOST" entries, and the marker near the message box that says a
chat leaves this machine and where it goes.

Talking to the server and the keychain happens off the GUI thread (run_in_background); the
dialog only shows what came back. Settings keep the URL and the chosen model, the key is in
the OS keychain (core/engine/remote.py), or for this session only where there is none.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat import conversations as chats
from desktop.core.context import AppContext
from desktop.core.engine import remote
from desktop.core.engine.remote import is_remote_ref
from desktop.core.errors import HearthError, error_text
from desktop.ui import theme
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import StatusLine, button

__all__ = ["REMOTE_ITEM", "RemoteMarker", "RemoteServerDialog", "add_remote_items",
           "is_remote_ref", "open_remote_dialog", "remote_status"]

REMOTE_ITEM = "__remote__"  # the picker's "Remote server…" entry
NEW_SERVER = "__new__"
PRIVACY_NOTE = ("Chats with a remote model are sent to that server: they leave this machine. "
                "Documents are still searched here; only the prompt, with the matching "
                "excerpts, goes out.")


def remote_refs(ctx: AppContext) -> list[str]:
    """The remote models to offer: each saved server's chosen model, and the model in use if
    it is remote (chosen from the CLI with --remote, say)."""
    refs = [remote.remote_ref(s["url"], s["model"]) for s in remote.saved_servers(ctx.settings)
            if s.get("model")]
    last = ctx.settings.get("last_model")
    if remote.is_remote_ref(last) and last not in refs:
        refs.append(str(last))
    return refs


def add_remote_items(box: QComboBox, ctx: AppContext) -> None:
    """Append "Remote: MODEL @ HOST" entries and the "Remote server…" entry to the picker."""
    for ref in remote_refs(ctx):
        label = remote.ref_label(ref)
        box.addItem(label, ref)
        box.setItemData(box.count() - 1, f"{label}\n{PRIVACY_NOTE}", Qt.ItemDataRole.ToolTipRole)
    box.addItem("Remote server (OpenAI-compatible)…", REMOTE_ITEM)


def remote_status(ref: str) -> str:
    """The model status line for a remote model."""
    url, model = remote.parse_ref(ref)
    return (f"{model} on the remote server {remote.host_of(url)}: messages you send in this "
            "chat leave this machine.")


class RemoteMarker(QLabel):
    """Beside the message box: shown while the chat on screen goes (or went) to a remote
    server, with the hosts. Hidden for chats that stayed on this machine."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Leaves this machine")
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hosts: list[str] = []
        self.hide()

    def refresh(self, ctx: AppContext, conversation_id: int | None) -> None:
        hosts: list[str] = []
        model = ctx.settings.get("last_model")
        if conversation_id is not None:
            try:
                conversation = chats.conversation(ctx, conversation_id)
            except HearthError:
                conversation = None
            if conversation is not None:
                hosts = list(conversation.settings.get("remote_hosts") or [])
                model = conversation.model_path or model
        if remote.is_remote_ref(model):
            host = remote.host_of(remote.parse_ref(str(model))[0])
            if host not in hosts:
                hosts.append(host)
        self.hosts = hosts
        if not hosts:
            self.hide()
            return
        text = f"Leaves this machine: sent to {', '.join(hosts)}"
        self.setText(text)
        self.setToolTip(PRIVACY_NOTE)
        self.setAccessibleDescription(f"{text}. {PRIVACY_NOTE}")
        theme.set_text_tone(self, "warning")
        self.show()


class RemoteServerDialog(QDialog):
    """Add, edit or remove a remote server: its URL, its API key, its model list."""

    checked = Signal(bool)  # a connection test ended (True: the server listed its models)
    saved = Signal(str)  # the remote model chosen (remote:MODEL@URL)
    removed = Signal(str)  # the URL forgotten

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Remote server (OpenAI-compatible)")
        self.setMinimumWidth(520)
        self.n_ctx: dict[str, int | None] = {}
        self.servers = QComboBox()
        self.servers.setAccessibleName("Saved servers")
        self.servers.currentIndexChanged.connect(self._server_chosen)
        self.url = QLineEdit()
        self.url.setAccessibleName("Server address")
        self.url.setPlaceholderText("http://192.168.1.20:8080")
        self.key = QLineEdit()
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("kept in the system keychain; empty if the server has none")
        self.models = QComboBox()
        self.models.setAccessibleName("Model")
        self.status = StatusLine("Connection status")
        note = QLabel(PRIVACY_NOTE)
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Server:", self.servers)
        form.addRow("Address:", self.url)
        form.addRow("API key:", self.key)
        form.addRow("Model:", self.models)
        self.test_button = button("Test connection", self.test_connection,
                                  "Ask the server for its models (GET /v1/models)")
        self.save_button = button("Save and use", self.save,
                                  "Keep the address and model, the key in the keychain")
        self.remove_button = button("Remove server", self.remove,
                                    "Forget this server and its key")
        rows = QHBoxLayout()
        rows.addWidget(self.test_button)
        rows.addStretch(1)
        rows.addWidget(self.remove_button)
        rows.addWidget(self.save_button)
        rows.addWidget(button("Close", self.reject))
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(self.status)
        column.addWidget(note)
        column.addLayout(rows)
        self._fill_servers()

    # --- saved servers ----------------------------------------------------------------
    def _fill_servers(self, select: str | None = None) -> None:
        self.servers.blockSignals(True)
        self.servers.clear()
        self.servers.addItem("New server", NEW_SERVER)
        for server in remote.saved_servers(self.ctx.settings):
            self.servers.addItem(server["url"], server["url"])
        index = self.servers.findData(select) if select else -1
        self.servers.setCurrentIndex(max(0, index if index >= 0 else self.servers.count() - 1))
        self.servers.blockSignals(False)
        self._server_chosen()

    def _server_chosen(self, _: int = 0) -> None:
        url = self.servers.currentData()
        self.models.clear()
        self.key.clear()
        if url == NEW_SERVER or url is None:
            self.url.clear()
            self.remove_button.setEnabled(False)
            return
        saved = remote.find_server(self.ctx.settings, url) or {}
        self.url.setText(url)
        if saved.get("model"):
            self.models.addItem(saved["model"])
        self.remove_button.setEnabled(True)
        self.key.setPlaceholderText("stored: leave empty to keep the stored key")

    def _address(self) -> str | None:
        try:
            return remote.normalize_url(self.url.text())
        except HearthError as exc:
            self.status.show_text(exc.message, "error")
            return None

    def _key_for(self, url: str) -> str | None:
        """The key typed, else the stored one (keychain: call off the GUI thread)."""
        return self.key.text().strip() or remote.get_api_key(url)

    # --- actions ------------------------------------------------------------------------
    def test_connection(self) -> None:
        url = self._address()
        if url is None:
            self.checked.emit(False)
            return
        self.status.show_text(f"Asking {remote.host_of(url)} for its models…")
        self.test_button.setEnabled(False)

        def ask() -> list[dict[str, Any]]:
            return remote.list_models(url, self._key_for(url))

        def done(models: list[dict[str, Any]]) -> None:
            self.test_button.setEnabled(True)
            current = self.models.currentText()
            self.models.clear()
            self.n_ctx = {m["id"]: m["n_ctx"] for m in models}
            for model in models:
                self.models.addItem(model["id"])
            if current in self.n_ctx:
                self.models.setCurrentText(current)
            self.status.show_text(f"Connected to {remote.host_of(url)}: {len(models)} "
                                  f"model{'s' if len(models) != 1 else ''}.", "good")
            self.checked.emit(True)

        def failed(exc: BaseException) -> None:
            self.test_button.setEnabled(True)
            self.status.show_text(error_text(exc), "error")
            self.checked.emit(False)

        run_in_background(ask, on_done=done, on_error=failed)

    def save(self) -> None:
        url = self._address()
        if url is None:
            return
        model = self.models.currentText().strip()
        if not model:
            self.status.show_text("Test the connection first, then choose a model.", "error")
            return
        remote.save_server(self.ctx.settings, url, model, self.n_ctx.get(model))
        typed = self.key.text().strip()
        ref = remote.remote_ref(url, model)

        def done(stored: bool) -> None:
            self._fill_servers(select=url)
            self.status.show_text(
                "Saved." if stored else "Saved. No system keychain answered, so the key is "
                "kept only until Hearth closes.", "good" if stored else "warning")
            self.saved.emit(ref)

        def failed(exc: BaseException) -> None:
            self.status.show_text(error_text(exc), "error")

        # The keychain can block where no secret service runs: never on the GUI thread.
        run_in_background(lambda: remote.set_api_key(url, typed) if typed else True,
                          on_done=done, on_error=failed)

    def remove(self) -> None:
        url = self.servers.currentData()
        if not url or url == NEW_SERVER:
            return

        def done(_: Any) -> None:
            self._fill_servers()
            self.status.show_text(f"Removed {url} and its key.")
            self.removed.emit(url)

        run_in_background(remote.remove_server, self.ctx.settings, url, on_done=done,
                          on_error=lambda exc: self.status.show_text(error_text(exc), "error"))


def open_remote_dialog(window: Any) -> RemoteServerDialog:
    """Open the dialog from the window's model picker; a saved model is chosen at once."""
    dialog = RemoteServerDialog(window.ctx, window)

    def chosen(ref: str) -> None:
        window.refresh_models()
        window.load_model(ref)

    dialog.saved.connect(chosen)
    dialog.removed.connect(lambda _: window.refresh_models())
    dialog.finished.connect(lambda _: window.refresh_models())
    window.remote_dialog = dialog
    dialog.open()
    return dialog
