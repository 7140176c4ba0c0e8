"""Models → Installed: the library with header facts and fit, the models folder, adding files
(read off the GUI thread), models from other apps, per-model defaults and removal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import error_text
from desktop.core.models.library import ModelEntry
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import StatusLine, button, button_row, item, make_table, size_text

if TYPE_CHECKING:
    from desktop.ui.models_page import ModelsPage


def _add_all(library: Any, paths: list[str], source: str) -> tuple[int, list[str]]:
    """Read each file's header and register it (runs off the GUI thread)."""
    added, problems = 0, []
    for path in paths:
        try:
            library.add(path, source=source)
            added += 1
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            problems.append(error_text(exc))
    return added, problems


# What a user compares first comes first; the path is last (and in the name's tooltip).
COLUMNS = {"Model": 0, "Quant": 1, "Size": 2, "Fit": 3, "Context": 4, "Architecture": 5,
           "Parameters": 6, "Chat template": 7, "Path": 8}


class InstalledTab(QWidget):
    def __init__(self, page: ModelsPage) -> None:
        super().__init__()
        self.page = page
        self.ctx = page.ctx
        self.entries: list[ModelEntry] = []
        column = QVBoxLayout(self)
        self.table = make_table(list(COLUMNS), "Installed models",
                                {0: 200, 1: 70, 2: 75, 3: 150, 4: 70, 5: 95, 6: 80, 7: 120})
        column.addWidget(self.table, 1)
        folder_row = QHBoxLayout()
        self.folder_label = QLabel()
        self.folder_label.setAccessibleName("Models folder")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long path must not widen the window: the label may shrink (tooltip has it all).
        self.folder_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(button("Change folder…", self.choose_folder,
                                    "Folder where new downloads are saved"))
        column.addLayout(folder_row)
        self.status = StatusLine("Installed status")
        column.addWidget(self.status)
        button_row(column, [("Add GGUF file…", self.choose_files),
                            ("Find models from other apps", self.scan),
                            ("Defaults for this model…", self.edit_defaults),
                            ("Remove…", self.remove)])
        self.show_folder()

    # --- listing -------------------------------------------------------------------
    def refresh(self) -> None:
        entries = self.ctx.library.list()
        self.entries = entries
        self.page.recommended.mark_installed(entries)
        self.table.setRowCount(len(entries))
        names = [e.name for e in entries]
        for row, e in enumerate(entries):
            m = e.metadata
            # Two files of one model (say, two copies) are told apart by their file names.
            shown = e.name if names.count(e.name) == 1 else f"{e.name} ({Path(e.path).name})"
            values = {"Model": shown, "Quant": m.get("quantization", "?"),
                      "Size": size_text(int(m.get("file_size", 0))),
                      "Context": str(m.get("context_length") or "?"),
                      "Architecture": m.get("architecture", "?"),
                      "Parameters": m.get("parameter_label", "?"),
                      "Chat template": "embedding model" if e.is_embedding
                      else "yes" if m.get("has_chat_template") else "no (base model)",
                      "Path": e.path}
            for name, value in values.items():
                self.table.setItem(row, COLUMNS[name], item(value))
            mmproj = e.settings.get("mmproj")  # a vision model: the pair loads together
            self.table.setItem(row, COLUMNS["Model"], item(
                f"{shown} + vision" if mmproj else shown,
                f"{e.name}\n{e.path}" + (f"\nImage projector: {mmproj}" if mmproj else "")))
            if e.exists:
                fit_item, _ = self.page.judge.item(int(m.get("file_size", 0)),
                                                   m.get("quantization"), summary=m)
            else:
                fit_item = item("file missing", e.path, "error")
            self.table.setItem(row, COLUMNS["Fit"], fit_item)

    def selected_entry(self) -> ModelEntry | None:
        row = self.table.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    # --- folder --------------------------------------------------------------------
    def show_folder(self) -> None:
        text = f"New downloads go to {self.ctx.models_dir}"
        self.folder_label.setText(text)
        self.folder_label.setToolTip(text)

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder for downloaded models",
                                                  str(self.ctx.models_dir))
        if chosen:
            self.set_models_folder(chosen)

    def set_models_folder(self, folder: str) -> None:
        try:
            target = self.ctx.set_models_dir(folder)
        except Exception as exc:  # noqa: BLE001 - shown inline, nothing changed
            self.status.show_text(error_text(exc), "error")
            return
        self.show_folder()
        self.status.show_text(f"New downloads go to {target}. Installed models stay where "
                              "they are.")

    # --- adding --------------------------------------------------------------------
    def choose_files(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Add GGUF models", str(Path.home()),
                                                 "GGUF models (*.gguf)")
        if chosen:
            self.add_paths(chosen)

    def add_paths(self, paths: list[str], source: str = "user") -> None:
        """Register files; their headers are read off the GUI thread (a network drive or a
        40 GB file must not freeze the window)."""
        self.status.show_text(f"Reading {len(paths)} file(s)…")

        def done(result: tuple[int, list[str]]) -> None:
            added, problems = result
            self.refresh()
            self.page.signals.library_changed.emit()
            if problems:
                self.status.show_text(" ".join(problems[:3]), "error")
            else:
                self.status.show_text(f"Added {added} model{'s' if added != 1 else ''}.",
                                      "good")

        run_in_background(_add_all, self.ctx.library, list(paths), source, on_done=done,
                          on_error=lambda exc: self.status.show_text(error_text(exc), "error"))

    def scan(self) -> None:
        from desktop.core.models.scan import scan

        self.status.show_text("Looking for models in LM Studio, GPT4All, Jan, Ollama and the "
                              "Hugging Face cache…")
        run_in_background(scan, on_done=self.offer_found,
                          on_error=lambda exc: self.status.show_text(error_text(exc), "error"))

    def offer_found(self, found: list[tuple[str, Path]], ask: bool = True) -> None:
        known = {e.path for e in self.ctx.library.list()}
        new = [(app, path) for app, path in found if str(path) not in known]
        if not new:
            self.status.show_text("No new models found in other apps.")
            return
        listing = "\n".join(f"{app}: {path}" for app, path in new[:20])
        if ask and QMessageBox.question(
                self, "Models found",
                f"Add these {len(new)} models in place (no copy)?\n\n" + listing,
                defaultButton=QMessageBox.StandardButton.Yes) != QMessageBox.StandardButton.Yes:
            return
        by_app: dict[str, list[str]] = {}
        for app, path in new:
            by_app.setdefault(app, []).append(str(path))
        for app, paths in by_app.items():
            self.add_paths(paths, source=app)

    # --- per-model defaults ----------------------------------------------------------
    def edit_defaults(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.status.show_text("Select a model first.")
            return
        from desktop.ui.chat_settings import ChatSettingsDialog

        dialog = ChatSettingsDialog(entry.settings.get("system_prompt", ""),
                                    {**self.ctx.app_defaults(), **entry.settings}, self,
                                    model_fields=True)
        dialog.setWindowTitle(f"Defaults for {entry.name}")
        dialog.make_default.hide()
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.save_defaults(entry, *dialog.values())

    def save_defaults(self, entry: ModelEntry, system: str, values: dict[str, Any]) -> None:
        """Keep only what differs from the app-wide defaults, so a later change there still
        reaches this model for everything the user did not set for it."""
        app = self.ctx.app_defaults()
        own = {k: v for k, v in values.items() if v != app.get(k)}  # -1 GPU layers = auto
        if system:
            own["system_prompt"] = system
        self.ctx.library.set_settings(entry.path, own)
        # The main window hears this and reloads the model now if it is the loaded one
        # ("Reloading … with context 512…" in its status line).
        self.page.signals.library_changed.emit()
        self.status.show_text(f"Saved defaults for {entry.name}. If it is loaded, it reloads "
                              "with them now.")

    # --- removing ------------------------------------------------------------------
    def remove(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.status.show_text("Select a model first.")
            return
        ours = self.ctx.may_delete_model_file(entry.path)
        size = size_text(int(entry.metadata.get("file_size", 0)))
        text = (f"Remove {entry.name} and delete its file ({size})?" if ours else
                f"Remove {entry.name} from the library? The file stays where it is (Hearth "
                "did not download it).")
        if QMessageBox.question(self, "Remove model", text,
                                defaultButton=QMessageBox.StandardButton.No) == \
                QMessageBox.StandardButton.Yes:
            self.remove_entry(entry, delete_file=ours)

    def remove_entry(self, entry: ModelEntry, delete_file: bool) -> None:
        freed = self.ctx.remove_model(entry.path, delete_file)
        self.refresh()
        self.page.signals.library_changed.emit()
        self.status.show_text(f"Removed {entry.name}"
                              + (f"; {size_text(freed)} freed." if freed else "."))
