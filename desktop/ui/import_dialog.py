"""Import chats…: choose another app's file or folder, see what was found (titles, message
counts, what is already here, what could not be read), then Import.

Reading and importing run off the GUI thread (desktop/ui/tasks.py); the window refreshes its
chat list from the `imported` signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.context import AppContext
from desktop.core.errors import error_text
from desktop.core.importers import APP_NAMES, APPS, ImportReport, Preview, make_preview, run_import
from desktop.core.importers.apply import ALREADY, EMPTY, NEW
from desktop.core.importers.gpt4all import default_folder
from desktop.ui.tasks import run_in_background


class ImportDialog(QDialog):
    previewed = Signal(object)  # the Preview, or the exception that stopped the reading
    imported = Signal(object)  # the ImportReport

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.preview: Preview | None = None
        self.report: ImportReport | None = None
        self._request = 0  # a newer reading makes an older one's result stale
        self.busy = False
        self.setWindowTitle("Import chats")
        self.setAccessibleName("Import chats")
        self.setMinimumWidth(560)

        intro = QLabel("Bring your chats from GPT4All (with its LocalDocs collections), "
                       "ChatGPT's data export, LM Studio, Jan or Open WebUI. Importing twice "
                       "adds nothing.")
        intro.setWordWrap(True)
        self.app_box = QComboBox()
        self.app_box.setAccessibleName("Import from")
        self.app_box.addItem("Detect the app", None)
        for app in APPS:
            self.app_box.addItem(APP_NAMES[app], app)
        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("File or folder to import")
        self.path_edit.setPlaceholderText("A file (conversations.json, an export) or a folder")
        self.path_edit.returnPressed.connect(self.read)
        self.file_button = QPushButton("File…")
        self.file_button.setAccessibleName("Choose a file to import")
        self.file_button.clicked.connect(self._choose_file)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setAccessibleName("Choose a folder to import")
        self.folder_button.clicked.connect(self._choose_folder)
        self.app_box.currentIndexChanged.connect(lambda _: self.read())
        source = QHBoxLayout()
        source.addWidget(self.app_box)
        source.addWidget(self.path_edit, 1)
        source.addWidget(self.file_button)
        source.addWidget(self.folder_button)

        self.status = QLabel("Choose what to import.")
        self.status.setAccessibleName("Import status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.found = QTreeWidget()
        self.found.setAccessibleName("What was found")
        self.found.setHeaderLabels(["Conversation", "Messages", "Status"])
        self.found.setRootIsDecorated(False)
        header = self.found.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.problems_label = QLabel("Could not be read (the rest is imported):")
        self.problems = QListWidget()
        self.problems.setAccessibleName("What could not be read")
        self.problems.setWordWrap(True)
        self.problems.setMaximumHeight(110)

        self.buttons = QDialogButtonBox()
        self.import_button = self.buttons.addButton("Import",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setAccessibleName("Import")
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self.start_import)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(source)
        layout.addWidget(self.status)
        layout.addWidget(self.found, 1)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.problems)
        layout.addWidget(self.buttons)
        self._show_problems([])
        gpt4all = default_folder()
        if gpt4all.is_dir():  # the usual case for people leaving GPT4All: ready to go
            self.set_source(str(gpt4all))

    # --- choosing -----------------------------------------------------------------------
    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a file to import", str(Path.home()),
            "Chat exports (*.json *.zip *.chat *.jsonl *.db);;All files (*)")
        if path:
            self.set_source(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder to import",
                                                str(Path.home()))
        if path:
            self.set_source(path)

    def set_source(self, path: str, app: str | None = None) -> None:
        """Show `path` (and `app`, when given) and read it."""
        if app is not None:
            self.app_box.blockSignals(True)
            self.app_box.setCurrentIndex(max(0, self.app_box.findData(app)))
            self.app_box.blockSignals(False)
        self.path_edit.setText(path)
        self.read()

    # --- reading ------------------------------------------------------------------------
    def read(self) -> None:
        path = self.path_edit.text().strip()
        if not path or self.busy:
            return
        self._request += 1
        request = self._request
        self.preview = None
        self.import_button.setEnabled(False)
        self.found.clear()
        self._show_problems([])
        self.status.setText(f"Reading {path}…")
        run_in_background(make_preview, self.ctx, path, self.app_box.currentData(),
                          on_done=lambda preview: self._previewed(request, preview),
                          on_error=lambda exc: self._previewed(request, exc))

    def _previewed(self, request: int, result: Any) -> None:
        if request != self._request:
            return  # the user chose something else meanwhile
        if isinstance(result, BaseException):
            self.status.setText(error_text(result))
            self.previewed.emit(result)
            return
        preview: Preview = result
        self.preview = preview
        marks = {NEW: "new", ALREADY: "already imported", EMPTY: "empty, skipped"}
        for item in preview.items:
            row = QTreeWidgetItem([item.title, str(len(item.conversation.messages)),
                                   marks[item.status]])
            row.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            row.setToolTip(0, item.conversation.where)
            self.found.addTopLevelItem(row)
        for entry in preview.collections:
            folders = len(entry.collection.folders) - len(entry.missing)
            row = QTreeWidgetItem([f"LocalDocs: {entry.collection.name}",
                                   "", f"{folders} folder{'s' * (folders != 1)} to index"])
            row.setToolTip(0, "\n".join(entry.collection.folders))
            self.found.addTopLevelItem(row)
        for column in (1, 2):
            self.found.resizeColumnToContents(column)
        self._show_problems([str(p) for p in preview.problems])
        new = preview.count(NEW)
        collections = sum(1 for c in preview.collections
                          if len(c.collection.folders) > len(c.missing))
        parts = [f"{new} new conversation{'s' * (new != 1)}"]
        if preview.count(ALREADY):
            parts.append(f"{preview.count(ALREADY)} already imported")
        if preview.count(EMPTY):
            parts.append(f"{preview.count(EMPTY)} empty")
        if collections:
            parts.append(f"{collections} LocalDocs collection{'s' * (collections != 1)}")
        self.status.setText(f"{preview.app_name}: {', '.join(parts)}.")
        self.import_button.setEnabled(bool(new or collections))
        self.previewed.emit(preview)

    def _show_problems(self, lines: list[str]) -> None:
        self.problems.clear()
        self.problems.addItems(lines)
        self.problems_label.setVisible(bool(lines))
        self.problems.setVisible(bool(lines))

    # --- importing ----------------------------------------------------------------------
    def start_import(self) -> None:
        if self.preview is None or self.busy:
            return
        self.busy = True
        for widget in (self.import_button, self.app_box, self.path_edit, self.file_button,
                       self.folder_button):
            widget.setEnabled(False)
        self.status.setText("Importing…")
        run_in_background(run_import, self.ctx, self.preview,
                          on_done=self._imported, on_error=self._failed)

    def _finish(self) -> None:
        self.busy = False
        for widget in (self.app_box, self.path_edit, self.file_button, self.folder_button):
            widget.setEnabled(True)

    def _imported(self, report: ImportReport) -> None:
        self._finish()
        self.report = report
        added = len(report.added)
        text = (f"Imported {added} conversation{'s' * (added != 1)} "
                f"({report.messages} messages).")
        indexing = [c["name"] for c in report.collections if c["collection_id"] is not None]
        if indexing:
            text += (" LocalDocs → Hearth collections, being indexed (see Documents): "
                     + ", ".join(indexing) + ".")
        self.status.setText(text)
        self._show_problems([str(p) for p in report.problems])
        for row in range(self.found.topLevelItemCount()):
            item = self.found.topLevelItem(row)
            if item is not None and item.text(2) == "new":
                item.setText(2, "imported")
        self.imported.emit(report)

    def _failed(self, exc: BaseException) -> None:
        self._finish()
        # Each conversation is written in one transaction: those before the failure are in,
        # and importing again adds only the rest.
        self.status.setText(f"{error_text(exc)} Conversations imported before this are kept; "
                            "import again to add the rest.")
        self.import_button.setEnabled(True)
