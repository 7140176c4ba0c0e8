"""The app-wide Settings dialog (Ctrl+, / Cmd+,): theme, model defaults, folders, chat states.

Per-chat sampling lives in "Chat settings…", per-model defaults in Models → Installed; this
dialog holds what applies to the whole app. Values are saved on OK, and what takes effect
later says so next to the field (a loaded model reloads with a new context or GPU layers
when OK is pressed: the main window hears settings_changed).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.context import AppContext
from desktop.core.engine import kv_states
from desktop.core.errors import error_text
from desktop.core.settings import DEFAULTS
from desktop.ui import theme
from desktop.ui.bridge import app_signals
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import StatusLine, button

THEME_LABELS = {"system": "Same as the system", "light": "Light", "dark": "Dark"}
API_SERVER_KEY = "api_server_enabled"  # shown only once the API server exists


def _path_label(text: str, name: str) -> QLabel:
    label = QLabel(text)
    label.setAccessibleName(name)
    label.setToolTip(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # A long path must not widen the dialog: it may be cut (the tooltip has it all).
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(120)
    return label


class SettingsDialog(QDialog):
    states_cleared = Signal(int)  # bytes freed by Clear

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        s = ctx.settings
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(form)

        self.theme_box = QComboBox()
        self.theme_box.setAccessibleName("Theme")
        for key, label in THEME_LABELS.items():
            self.theme_box.addItem(label, key)
        self.theme_box.setCurrentIndex(max(0, self.theme_box.findData(s.get("theme") or
                                                                      "system")))
        form.addRow("Theme", self.theme_box)

        self.n_ctx = QSpinBox()
        self.n_ctx.setAccessibleName("Default context length")
        self.n_ctx.setRange(256, 262144)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setSuffix(" tokens")
        self.n_ctx.setValue(int(s.get("n_ctx") or 4096))
        self.n_ctx.setToolTip("How much text a model sees at once, unless a model has its own "
                              "default. More needs more memory.")
        form.addRow("Default context", self.n_ctx)

        self.gpu_layers = QSpinBox()
        self.gpu_layers.setAccessibleName("Default GPU layers")
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText("Auto (what free VRAM holds)")
        layers = s.get("n_gpu_layers")
        self.gpu_layers.setValue(-1 if layers is None else int(layers))
        self.gpu_layers.setToolTip("Layers to run on the GPU; 0 runs on the CPU only")
        form.addRow("GPU layers", self.gpu_layers)
        note = QLabel("On OK, a loaded model without its own defaults (Models → Installed) "
                      "reloads with these.")
        note.setWordWrap(True)
        form.addRow("", note)

        # Speculative decoding: the app-wide switch; a model's own defaults can override it.
        self.speculative = QCheckBox("Speculative decoding")
        self.speculative.setAccessibleName("Speculative decoding")
        self.speculative.setChecked(bool(s.get("sampling", {}).get("speculative", True)))
        self.speculative.setToolTip("Guesses the next few tokens from the conversation and "
                                    "checks them in one step; the reply stays exactly the same")
        form.addRow("Drafting", self.speculative)
        drafting_note = QLabel("Faster replies where they repeat text from the chat or your "
                               "documents; the words are the same with it off.")
        drafting_note.setWordWrap(True)
        form.addRow("", drafting_note)

        folder_row = QHBoxLayout()
        self.models_folder = _path_label(str(ctx.models_dir), "Models folder")
        folder_row.addWidget(self.models_folder, 1)
        folder_row.addWidget(button("Change…", self.choose_models_folder,
                                    "Folder where new downloads are saved"))
        form.addRow("Models folder", folder_row)

        data_row = QHBoxLayout()
        self.data_folder = _path_label(str(ctx.data_dir), "Data folder")
        data_row.addWidget(self.data_folder, 1)
        data_row.addWidget(button("Open", self.open_data_folder,
                                  "Show the folder with your chats and settings"))
        form.addRow("Data folder", data_row)

        self.kv_on_disk = QCheckBox("Keep chat states on disk")
        self.kv_on_disk.setAccessibleName("Keep chat states on disk")
        self.kv_on_disk.setToolTip("Switching back to a long chat skips re-reading it")
        self.kv_on_disk.setChecked(bool(s.get("kv_states_on_disk", True)))
        form.addRow("Chat states", self.kv_on_disk)
        self.kv_ram = QSpinBox()
        self.kv_ram.setAccessibleName("Memory for chat states")
        self.kv_ram.setRange(0, 65536)
        self.kv_ram.setSingleStep(256)
        self.kv_ram.setSuffix(" MB")
        self.kv_ram.setValue(int(s.get("kv_states_ram_mb") or 1024))
        form.addRow("Memory for states", self.kv_ram)
        self.kv_disk: QSpinBox | None = None
        if "kv_states_disk_mb" in DEFAULTS:  # the disk budget, where the engine has one
            self.kv_disk = QSpinBox()
            self.kv_disk.setAccessibleName("Disk budget for chat states")
            self.kv_disk.setRange(0, 1_048_576)
            self.kv_disk.setSingleStep(1024)
            self.kv_disk.setSuffix(" MB")
            self.kv_disk.setValue(int(s.get("kv_states_disk_mb") or 0))
            form.addRow("Disk for states", self.kv_disk)
        # What the saved states take now, and a way to free it (chats stay; returning to one
        # re-reads it once). Read and cleared off the GUI thread.
        states_row = QHBoxLayout()
        self.kv_usage = QLabel("Counting saved chat states…")
        self.kv_usage.setAccessibleName("Saved chat states")
        self.kv_clear = button("Clear", self.clear_states,
                               "Delete every saved chat state; chats are kept")
        states_row.addWidget(self.kv_usage, 1)
        states_row.addWidget(self.kv_clear)
        form.addRow("Saved states", states_row)
        self._show_states()

        self.api_server: QCheckBox | None = None
        self.api_section: Any = None
        if API_SERVER_KEY in DEFAULTS:
            from desktop.ui.api_status import ApiServerSection

            # Switch, address, key: the server itself is the app's (ctx.api), not this dialog's.
            self.api_section = ApiServerSection(ctx)
            self.api_server = self.api_section.switch
            layout.addWidget(self.api_section)

        for field in (self.theme_box, self.n_ctx, self.gpu_layers, self.kv_ram, self.kv_disk):
            if field is not None:
                field.setMaximumWidth(320)  # a value, not a banner, when the dialog is wide
        self.status = StatusLine("Settings status")
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def choose_models_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder for downloaded models",
                                                  str(self.ctx.models_dir))
        if chosen:
            self.set_models_folder(chosen)

    def set_models_folder(self, folder: str) -> bool:
        try:
            target = self.ctx.set_models_dir(folder)
        except Exception as exc:  # noqa: BLE001 - shown inline, nothing changed
            self.status.show_text(error_text(exc), "error")
            return False
        self.models_folder.setText(str(target))
        self.models_folder.setToolTip(str(target))
        self.status.show_text("New downloads go there. Installed models stay where they are.")
        app_signals(self.ctx).settings_changed.emit()
        return True

    def _show_states(self) -> None:
        run_in_background(kv_states.usage, self.ctx.data_dir,
                          on_done=lambda usage: self.kv_usage.setText(usage.describe()),
                          on_error=lambda exc: self.kv_usage.setText(error_text(exc)))

    def clear_states(self) -> None:
        self.kv_clear.setEnabled(False)

        def cleared(freed: kv_states.Usage) -> None:
            self.kv_clear.setEnabled(True)
            self.kv_usage.setText(f"Cleared: {freed.describe()}" if freed.files
                                  else freed.describe())
            self.states_cleared.emit(freed.bytes)

        def failed(exc: BaseException) -> None:
            self.kv_clear.setEnabled(True)
            self.kv_usage.setText(error_text(exc))

        run_in_background(kv_states.clear, self.ctx.data_dir, on_done=cleared, on_error=failed)

    def open_data_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.ctx.data_dir)))

    def save(self) -> None:
        s = self.ctx.settings
        mode = self.theme_box.currentData()
        s.values["theme"] = mode
        s.values["n_ctx"] = self.n_ctx.value()
        layers = self.gpu_layers.value()
        s.values["n_gpu_layers"] = None if layers < 0 else layers
        # Read by the next reply (ChatService.sampling): no reload needed.
        s.values["sampling"] = {**s.get("sampling", {}),
                                "speculative": self.speculative.isChecked()}
        s.values["kv_states_on_disk"] = self.kv_on_disk.isChecked()
        s.values["kv_states_ram_mb"] = self.kv_ram.value()
        if self.kv_disk is not None:
            s.values["kv_states_disk_mb"] = self.kv_disk.value()
        if self.api_section is not None:
            self.api_section.save(s)
        s.save()
        theme.apply_theme(mode)
        app_signals(self.ctx).settings_changed.emit()
        self.accept()
