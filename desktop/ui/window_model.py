"""The main window's model side: the picker above the chat, the model status line, loading a
model, and reloading the loaded one when its defaults change (context, GPU layers)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QFileDialog

from desktop.core.chat import conversations as chats
from desktop.core.models.starter import starter_note
from desktop.ui.remote_panel import (
    REMOTE_ITEM,
    add_remote_items,
    is_remote_ref,
    open_remote_dialog,
    remote_status,
)
from desktop.ui.tasks import run_in_background

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow

OPEN_FILE = "__open__"
BUSY = "busy"  # errors whose cause is a running reply or load: cleared when it ends


class ModelControl(QObject):
    """Owns the picker (window.model_box), the status line and the load state."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.loading = False
        self.loaded_with: dict[str, Any] | None = None  # the settings the model was loaded with
        self.reload_pending = False  # defaults changed while busy: reload when it ends
        self.load_label = ""  # what the status line says while a model loads

    def refresh_models(self) -> None:
        w = self.window
        box = w.model_box
        box.blockSignals(True)
        box.clear()
        models = chats.chat_models(w.ctx)
        current = chats.choose_default_model(w.ctx, models)
        for entry in models:
            meta = entry.metadata
            label = (f"{entry.name} · {meta.get('quantization', '?')} · "
                     f"{meta.get('file_size', 0) / 1e6:,.0f} MB · {meta.get('architecture', '?')}")
            if not entry.exists:
                label += " · file missing"
            box.addItem(label, entry.path)
            box.setItemData(box.count() - 1, f"{label}\n{entry.path}",
                            Qt.ItemDataRole.ToolTipRole)
        add_remote_items(box, w.ctx)  # "Remote: MODEL @ HOST", "Remote server…"
        box.addItem("Open GGUF file…", OPEN_FILE)
        index = box.findData(current) if current else -1
        box.setCurrentIndex(index if index >= 0 else box.count() - 1)
        box.blockSignals(False)
        self.describe_model()

    def describe_model(self, prefix: str = "") -> None:
        w = self.window
        path = w.ctx.settings.get("last_model")
        w.remote_marker.refresh(w.ctx, w.current_id)
        if is_remote_ref(path):
            w.model_status.show_text(prefix or remote_status(path))
            return
        entry = chats.model_entry(w.ctx, path)
        if entry is None and path:
            # Chosen elsewhere (CLI, settings) and joining the library in the background.
            w.model_status.show_text(prefix or f"{Path(path).name}: loads when you send "
                                     "a message.")
            return
        if entry is None:
            # Until the library has been read off-thread, say nothing rather than flash
            # "no model" on a first run whose starter model is being registered.
            known = w.start_panel.view is not None
            w.model_status.show_text(prefix or ("No model chosen." if known else ""))
            return
        notes = [prefix] if prefix else []
        model = w.service.model
        loaded = model is not None and model.path == entry.path and w.ctx.engine.loaded
        if loaded and model:
            notes.append(f"Loaded, context {model.n_ctx}: {model.gpu_plan}.")
            if model.loaded.get("draft_model"):
                # Paired automatically (or chosen in the model's defaults): say which.
                notes.append(f"Drafts with {model.loaded['draft_model']}.")
            if model.warning:
                notes.append(model.warning)  # where the model status shows, not in a log
        else:
            notes.append("Loads when you send a message.")
        if entry.source == "starter":
            notes.append(starter_note(entry.path))
        elif entry.is_base_model:
            notes.append("Base model (no chat template): it continues text rather than "
                         "following instructions.")
        w.model_status.show_text(" ".join(notes))

    def model_chosen(self, index: int) -> None:
        path = self.window.model_box.itemData(index)
        if path == OPEN_FILE:
            self.open_model_file()
            return
        if path == REMOTE_ITEM:
            self.refresh_models()  # the picker goes back to the model in use
            open_remote_dialog(self.window)
            return
        self.load_model(path)

    def open_model_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self.window, "Open a GGUF model",
                                                str(Path.home()), "GGUF models (*.gguf)")
        if not chosen:
            self.refresh_models()
            return
        self.load_model(chosen)

    def load_model(self, path: str, status: str | None = None) -> None:
        w = self.window
        if w.generating:
            w.show_error("Stop the current reply before switching models.", BUSY)
            self.refresh_models()
            return
        w.clear_error()
        self.load_label = f"Loading {Path(path).name}"
        w.model_status.show_text(status or f"{self.load_label}…")
        self._set_loading(True)

        def done(_: Any) -> None:
            self._set_loading(False)
            self.loaded_with = self.wanted(path)
            if w.current_id is not None and w.service.model is not None:
                chats.set_model(w.ctx, w.current_id, w.service.model.path)
            self.refresh_models()
            w._show_start_if_empty()

        def failed(exc: BaseException) -> None:
            self._set_loading(False)
            self.refresh_models()
            w.show_error(exc)

        run_in_background(w.service.load_model, path, on_done=done, on_error=failed)

    def _set_loading(self, loading: bool) -> None:
        w = self.window
        self.loading = loading
        if not loading:
            self.load_label = ""
        w.model_box.setEnabled(not loading and not w.generating)
        w.send_button.setEnabled(not loading and not w.generating)
        if not loading:
            w.clear_error(BUSY)

    def wanted(self, path: str) -> dict[str, Any]:
        return {"path": path, **chats.wanted_load(self.window.ctx, path)}

    def library_changed(self) -> None:
        self.refresh_models()
        self.window._show_start_if_empty()
        self.check_reload()

    def check_reload(self) -> None:
        """Per-model or app defaults changed (context, GPU layers): reload the loaded model
        with them now, in the background, and say so, instead of keeping the old ones."""
        w = self.window
        model = w.service.model
        if model is None or not w.ctx.engine.loaded:
            return
        if w.generating or self.loading:
            self.reload_pending = True
            return
        self.reload_pending = False
        if self.loaded_with is None or self.loaded_with.get("path") != model.path:
            self.loaded_with = self.wanted(model.path)
        reason = chats.reload_reason(w.ctx, model, self.loaded_with)
        if not reason:
            return
        self.load_label = f"Reloading {model.info.name or Path(model.path).name} with {reason}"
        w.model_status.show_text(f"{self.load_label}…")
        self._set_loading(True)
        path = model.path

        def done(_: Any) -> None:
            self._set_loading(False)
            self.loaded_with = self.wanted(path)
            self.describe_model(f"Reloaded with {reason}.")
            w.replies.update_meter()

        def failed(exc: BaseException) -> None:
            self._set_loading(False)
            self.describe_model()
            w.show_error(exc)

        run_in_background(chats.reload_model, w.ctx, w.service, on_done=done,
                          on_error=failed)
