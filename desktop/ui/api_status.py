"""The window side of the API server (desktop/core/api_service.py): the indicator in the
status row ("Serving an API request…"), the wiring that starts the server with the app and
follows its switch, and the "API server" section of the Settings dialog.

The server belongs to the app context; these widgets only observe it (AppSignals.api_changed)
and ask it to apply the settings (`sync`, off the GUI thread).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from desktop.core.api_service import DEFAULT_HOST, DEFAULT_PORT, ApiStatus
from desktop.core.context import AppContext
from desktop.core.settings import Settings
from desktop.ui.bridge import app_signals
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import StatusLine, button

SERVING = "Serving an API request…"
NOT_LOOPBACK = ("Other computers on your network can reach the server at this address "
                "(they still need the key). Keep 127.0.0.1 unless you need that.")


def _is_loopback(host: str) -> bool:
    from desktop.server.auth import is_loopback

    return is_loopback(host.strip() or DEFAULT_HOST)


def sync_api(ctx: AppContext, on_error: Any = None) -> None:
    """Start, stop or move the server as the settings say, off the GUI thread (binding a port
    and the keychain can wait); its events arrive through AppSignals.api_changed."""
    run_in_background(ctx.api.sync, on_error=on_error)


class ApiIndicator(QLabel):
    """Beside the context meter: where the API is served, and when it serves a request.
    Hidden while the server is off."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window_ = window
        self.setAccessibleName("API server")
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.status = ApiStatus()
        self.hide()

    def show_status(self, event: str, status: ApiStatus) -> None:
        self.status = status
        if event == "failed" and status.error:
            self.window_.show_error(status.error)
        if not status.running:
            self.hide()
            return
        address = status.url.removeprefix("http://")
        text = SERVING if status.serving else f"API on {address}"
        self.setText(text)
        self.setToolTip(f"The API server runs at {status.url}/v1 (OpenAI) and {status.url}/api "
                        "(Ollama). Settings → API server has its key.")
        self.setAccessibleDescription(text)
        self.show()
        if event == "started":
            self._load_window_model()

    def _load_window_model(self) -> None:
        """A server needs a loaded model: with none yet, the window loads its last one (as
        it would on the first message), and the status line shows it."""
        window = self.window_
        path = window.ctx.settings.get("last_model")
        if path and window.service.model is None and not (window.loading or window.generating):
            window.load_model(path)

    def sync(self) -> None:
        sync_api(self.window_.ctx, on_error=self.window_.show_error)


def install_api_server(window: Any) -> ApiIndicator:
    """Wire the app's API server to the main window: it serves the window's model, the
    indicator follows it, a saved switch applies, and it starts now if it is on."""
    ctx: AppContext = window.ctx
    indicator = ApiIndicator(window)
    ctx.api.model_source = lambda: window.service.model
    signals = app_signals(ctx)
    signals.connect_api()
    signals.api_changed.connect(indicator.show_status)
    signals.settings_changed.connect(indicator.sync)
    if ctx.api.running:
        indicator.show_status("started", ctx.api.status)
    elif ctx.api.wanted() is not None:
        indicator.sync()
    return indicator


class ApiServerSection(QGroupBox):
    """Settings → API server: the switch, the address (loopback unless chosen, with a
    warning), the allowed web origin, and the address and key to copy."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("API server", parent)
        self.ctx = ctx
        s = ctx.settings
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.switch = QCheckBox("Serve an OpenAI- and Ollama-compatible API")
        self.switch.setAccessibleName("API server")
        self.switch.setToolTip("Other programs can use the loaded model through this server; "
                               "they need the key below")
        self.switch.setChecked(bool(s.get("api_server_enabled")))
        form.addRow("", self.switch)

        self.host = QLineEdit(str(s.get("api_server_host") or DEFAULT_HOST))
        self.host.setAccessibleName("API server address")
        self.host.setPlaceholderText(DEFAULT_HOST)
        self.host.setToolTip("127.0.0.1: this computer only. 0.0.0.0: every network.")
        self.port = QSpinBox()
        self.port.setAccessibleName("API server port")
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("Any free port")
        port = s.get("api_server_port")
        self.port.setValue(DEFAULT_PORT if port is None else int(port))
        where = QHBoxLayout()
        where.addWidget(self.host, 1)
        where.addWidget(QLabel("Port"))
        where.addWidget(self.port)
        form.addRow("Listen on", where)

        self.warning = StatusLine("API server warning")
        self.warning.setWordWrap(True)
        form.addRow("", self.warning)

        self.origin = QLineEdit(str(s.get("api_server_allow_origin") or ""))
        self.origin.setAccessibleName("Allowed web origin")
        self.origin.setPlaceholderText("none (web pages cannot call it)")
        self.origin.setToolTip("A web page's origin, such as http://localhost:3000, that may "
                               "call the API from a browser (CORS)")
        form.addRow("Web origin", self.origin)

        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setAccessibleName("API address")
        address_row = QHBoxLayout()
        address_row.addWidget(self.address, 1)
        self.copy_address = button("Copy", lambda: self._copy(self.address.text(),
                                                               self.copy_address),
                                   "Copy the address for a client's base URL")
        self.copy_address.setAccessibleName("Copy the API address")
        address_row.addWidget(self.copy_address)
        form.addRow("Address", address_row)

        self.key = QLineEdit()
        self.key.setReadOnly(True)
        self.key.setAccessibleName("API key")
        self.key.setPlaceholderText("Reading the keychain…")
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        self.copy_key = button("Copy", lambda: self._copy(self.key.text(), self.copy_key),
                               "Copy the key clients send as 'Authorization: Bearer KEY'")
        self.copy_key.setAccessibleName("Copy the API key")
        self.copy_key.setEnabled(False)
        key_row.addWidget(self.copy_key)
        form.addRow("Key", key_row)
        self.key_note = QLabel()
        self.key_note.setWordWrap(True)
        form.addRow("", self.key_note)

        self.host.textChanged.connect(self._update)
        self.port.valueChanged.connect(self._update)
        signals = app_signals(ctx)
        signals.connect_api()
        signals.api_changed.connect(self._server_changed)
        self._update()
        # The keychain can take seconds to answer (or never, headless): off the GUI thread.
        run_in_background(ctx.api.key, on_done=self._key_ready,
                          on_error=lambda exc: self._key_ready(None, exc))

    def _key_ready(self, key: str | None, error: BaseException | None = None) -> None:
        try:
            if key is None:
                self.key.setPlaceholderText(f"No key: {error}")
                return
            self.key.setText(key)
            self.copy_key.setEnabled(True)
            source = self.ctx.api.key_source
            self.key_note.setText({
                "environment": "The key comes from the HEARTH_API_KEY environment variable.",
                "session": "No system keychain answered, so this key lasts until Hearth "
                           "closes; set HEARTH_API_KEY for one that lasts.",
            }.get(source, "Kept in the system keychain."))
        except RuntimeError:
            pass  # the dialog was closed before the keychain answered

    def _server_changed(self, _: str, __: ApiStatus) -> None:
        self._update()

    def _update(self) -> None:
        host = self.host.text().strip() or DEFAULT_HOST
        if _is_loopback(host):
            self.warning.show_text("")
            self.warning.hide()
        else:
            self.warning.show_text(NOT_LOOPBACK, "warning")
            self.warning.show()
        status = self.ctx.api.status
        if status.running:
            self.address.setText(f"{status.url}/v1")
        else:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            shown = f"[{shown}]" if ":" in shown else shown
            port = self.port.value()
            self.address.setText(f"http://{shown}:{port}/v1" if port else
                                 f"http://{shown}:(a free port, chosen when it starts)/v1")

    def _copy(self, text: str, source: Any) -> None:
        QGuiApplication.clipboard().setText(text)
        source.setText("Copied")

    def save(self, s: Settings) -> None:
        """Into the settings the dialog saves; the app applies them (settings_changed)."""
        s.values["api_server_enabled"] = self.switch.isChecked()
        s.values["api_server_host"] = self.host.text().strip() or DEFAULT_HOST
        s.values["api_server_port"] = self.port.value()
        s.values["api_server_allow_origin"] = self.origin.text().strip()
