"""The Documents window: collections of files and folders, indexing progress, per-file errors,
the embedding model, and the passage view that a citation opens.

Indexing and folder watching belong to the app (AppContext.indexer / .watcher): this window
submits jobs and observes them through the app's signals, so closing it stops nothing.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.core.context import AppContext
from desktop.core.documents.index import IndexState
from desktop.core.documents.indexer import IndexJob
from desktop.core.documents.passages import passage_with_neighbours
from desktop.core.errors import error_text
from desktop.ui import theme
from desktop.ui.bridge import app_signals
from desktop.ui.file_drop import FileDropTarget
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import THEME_EVENTS, StatusLine, button, item, make_table, retone

OTHER = "__other__"
NONE = "__none__"


class DocumentsPage(FileDropTarget, QDialog):
    collections_changed = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.signals = app_signals(ctx)
        self.setWindowTitle("Documents")
        self.setAccessibleName("Documents")
        self.resize(1000, 620)
        self.collections: list[dict[str, Any]] = []
        self.document_rows: list[dict[str, Any]] = []
        layout = QVBoxLayout(self)

        embed_row = QHBoxLayout()
        embed_label = QLabel("Embedding model:")
        self.embed_box = QComboBox()
        self.embed_box.setAccessibleName("Embedding model")
        self.embed_box.setToolTip("Turns passages into vectors for meaning search; without one, "
                                  "search uses keywords only")
        self.embed_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.embed_box.setMinimumContentsLength(16)
        self.embed_box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.embed_box.setMaximumWidth(520)  # a name, not a banner, on a wide window
        self.embed_box.activated.connect(self._embed_chosen)
        embed_label.setBuddy(self.embed_box)
        embed_row.addWidget(embed_label)
        embed_row.addWidget(self.embed_box, 1)
        embed_row.addStretch(0)
        layout.addLayout(embed_row)
        self.embed_note = StatusLine("Embedding model note")
        layout.addWidget(self.embed_note)

        splitter = QSplitter()
        splitter.setChildrenCollapsible(False)
        left_widget = QWidget()
        left = QVBoxLayout(left_widget)
        left.setContentsMargins(0, 0, 0, 0)
        collections_label = QLabel("Collections")
        left.addWidget(collections_label)
        self.collection_list = QListWidget()
        self.collection_list.setAccessibleName("Collections")
        self.collection_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.collection_list.setMinimumWidth(150)
        # Long names elide inside the list instead of scrolling it sideways.
        self.collection_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.collection_list.setWordWrap(False)
        collections_label.setBuddy(self.collection_list)
        self.collection_list.currentRowChanged.connect(lambda _: self.refresh_documents())
        left.addWidget(self.collection_list, 1)
        row = QHBoxLayout()
        for label, handler in (("New…", self.new_collection), ("Rename…", self.rename),
                               ("Delete…", self.delete)):
            row.addWidget(button(label, handler))
        left.addLayout(row)
        splitter.addWidget(left_widget)

        right_widget = QWidget()
        right = QVBoxLayout(right_widget)
        right.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        for label, handler in (("Add files…", self.add_files), ("Add folder…", self.add_folder),
                               ("Remove", self.remove_selected), ("Re-index", self.reindex)):
            buttons.addWidget(button(label, handler))
        buttons.addStretch(1)
        right.addLayout(buttons)
        self.documents_table = make_table(["File", "Status", "Passages", "Problem"],
                                          "Files in this collection",
                                          {0: 220, 1: 70, 2: 70}, prose=(3,))
        right.addWidget(self.documents_table, 1)
        self.watch_box = QCheckBox("Watch this collection's folders and re-index changes")
        self.watch_box.setAccessibleName("Watch folders for changes")
        self.watch_box.toggled.connect(self._watch_toggled)
        right.addWidget(self.watch_box)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Indexing progress")
        self.progress.hide()
        self.progress_label = StatusLine("Indexing status")
        right.addWidget(self.progress)
        right.addWidget(self.progress_label)
        splitter.addWidget(right_widget)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([240, 720])
        layout.addWidget(splitter, 1)

        # Rows of files indexed so far are re-read at most a few times a second, so a
        # folder of 10,000 small files does not redraw the table 10,000 times.
        self._rows_timer = QTimer(self)
        self._rows_timer.setSingleShot(True)
        self._rows_timer.setInterval(300)
        self._rows_timer.timeout.connect(self._rows_due)
        self.signals.index_event.connect(self._index_event)
        self.signals.library_changed.connect(self.refresh_embed_models)
        self.signals.watch_failed.connect(self._watch_failed)
        self.setAcceptDrops(True)
        self.refresh()
        job = self.ctx.indexer.current
        if job is not None:  # opened while the app indexes: show it
            self._index_event("started", job)

    def files_dropped(self, paths: list[str]) -> None:
        self.index_paths(paths)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in THEME_EVENTS:
            retone(self)  # failed files stay readable after a theme switch

    # --- embedding model -------------------------------------------------------------
    def refresh_embed_models(self) -> None:
        current = self.ctx.embed_model
        self.embed_box.blockSignals(True)
        self.embed_box.clear()
        self.embed_box.addItem("None: keyword search only", NONE)
        installed = self.ctx.embedding_models()
        for entry in installed:
            self.embed_box.addItem(entry.name, entry.path)
            self.embed_box.setItemData(self.embed_box.count() - 1, entry.path,
                                       Qt.ItemDataRole.ToolTipRole)
        if current and self.embed_box.findData(current) < 0:
            self.embed_box.addItem(Path(current).name, current)  # chosen as a file elsewhere
            self.embed_box.setItemData(self.embed_box.count() - 1, current,
                                       Qt.ItemDataRole.ToolTipRole)
        self.embed_box.addItem("Other GGUF file…", OTHER)
        index = self.embed_box.findData(current) if current else 0
        self.embed_box.setCurrentIndex(max(0, index))
        self.embed_box.setToolTip(current or "No embedding model: keyword search only")
        self.embed_box.blockSignals(False)
        if current:
            self.embed_note.show_text("Keyword and meaning search.")
        elif installed:
            self.embed_note.show_text("Choose the installed embedding model above for search "
                                      "by meaning, not only by keywords.")
        else:
            self.embed_note.show_text("Keyword search only. Models → Recommended has "
                                      "nomic-embed-text for search by meaning.")

    def _embed_chosen(self, index: int) -> None:
        data = self.embed_box.itemData(index)
        if data == OTHER:
            path, _ = QFileDialog.getOpenFileName(self, "Choose an embedding model (GGUF)",
                                                  str(self.ctx.models_dir),
                                                  "GGUF models (*.gguf)")
            if not path:
                self.refresh_embed_models()
                return
            self.set_embed_model(path)
        elif data == NONE:
            self.ctx.settings.set("embed_model", None)
            self.refresh_embed_models()
        elif data != self.ctx.embed_model:
            self.set_embed_model(data)

    def set_embed_model(self, path: str) -> None:
        """Use `path` for meaning search once its header says it is an embedding model (read
        off the GUI thread); a chat model is refused with a sentence, nothing changes."""
        self.embed_note.show_text(f"Checking {Path(path).name}…")

        def accepted(checked: str) -> None:
            self.ctx.settings.set("embed_model", checked)
            self.refresh_embed_models()
            self.embed_note.show_text("Re-index collections to add meaning search to them.")

        def refused(exc: BaseException) -> None:
            self.refresh_embed_models()
            self.embed_note.show_text(error_text(exc), "error")

        run_in_background(self.ctx.check_embedding_model, path, on_done=accepted,
                          on_error=refused)

    # --- collections -----------------------------------------------------------------
    def refresh(self) -> None:
        self.refresh_embed_models()
        current = self.current_collection()
        self.collection_list.blockSignals(True)
        self.collection_list.clear()
        self.collections = self.ctx.documents.collections()
        for c in self.collections:
            counts = f"{c['files']} files, {c['chunks']} passages" + (
                f", {c['failed']} failed" if c["failed"] else "")
            entry = QListWidgetItem(f"{c['name']}\n{counts}")
            entry.setToolTip(f"{c['name']} ({counts})")
            entry.setData(Qt.ItemDataRole.UserRole, c["id"])
            self.collection_list.addItem(entry)
        self.collection_list.blockSignals(False)
        ids = [c["id"] for c in self.collections]
        self.collection_list.setCurrentRow(ids.index(current) if current in ids else
                                           (0 if ids else -1))
        self.refresh_documents()

    def current_collection(self) -> int | None:
        entry = self.collection_list.currentItem()
        return int(entry.data(Qt.ItemDataRole.UserRole)) if entry else None

    def refresh_documents(self) -> None:
        collection = self.current_collection()
        rows = self.ctx.documents.documents(collection) if collection is not None else []
        self.documents_table.setRowCount(len(rows))
        self.document_rows = rows
        for row, d in enumerate(rows):
            self.documents_table.setItem(row, 0, item(Path(d["path"]).name, d["path"]))
            tone = None if d["status"] == "indexed" else "error"
            self.documents_table.setItem(row, 1, item(d["status"], tone=tone))
            self.documents_table.setItem(row, 2, item(str(d["chunk_count"])))
            self.documents_table.setItem(row, 3, item(d["error"] or ""))
        info = next((c for c in self.collections if c["id"] == collection), None)
        self.watch_box.blockSignals(True)
        self.watch_box.setChecked(bool(info and info["watch"]))
        self.watch_box.setEnabled(info is not None)
        self.watch_box.blockSignals(False)

    def new_collection(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection", "Name:")
        if ok and name.strip():
            self.create_collection(name)

    def create_collection(self, name: str) -> int | None:
        try:
            collection = self.ctx.documents.create_collection(name)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.progress_label.show_text(error_text(exc), "error")
            return None
        self.refresh()
        ids = [c["id"] for c in self.collections]
        self.collection_list.setCurrentRow(ids.index(collection))
        self.collections_changed.emit()
        return collection

    def rename(self) -> None:
        collection = self.current_collection()
        if collection is None:
            return
        name, ok = QInputDialog.getText(self, "Rename collection", "Name:")
        if ok and name.strip():
            try:
                self.ctx.documents.rename_collection(collection, name)
            except Exception as exc:  # noqa: BLE001 - shown inline
                self.progress_label.show_text(error_text(exc), "error")
                return
            self.refresh()
            self.collections_changed.emit()

    def delete(self) -> None:
        collection = self.current_collection()
        if collection is None:
            return
        if QMessageBox.question(self, "Delete collection", "Delete this collection and its "
                                "index? Your files are not touched.",
                                defaultButton=QMessageBox.StandardButton.No) == \
                QMessageBox.StandardButton.Yes:
            self.ctx.documents.delete_collection(collection)
            self.refresh()
            self.collections_changed.emit()

    # --- indexing --------------------------------------------------------------------
    def add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add documents", str(Path.home()))
        if files:
            self.index_paths(files)

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder", str(Path.home()))
        if folder:
            self.index_paths([folder])

    def index_paths(self, paths: list[str] | None, collection: int | None = None
                    ) -> IndexJob | None:
        collection = collection if collection is not None else self.current_collection()
        if collection is None:
            collection = self.create_collection("Documents")
            if collection is None:
                return None
        waiting = self.ctx.indexer.busy
        job = self.ctx.indexer.submit(collection, paths)
        if waiting and job.status == "queued":
            self.progress_label.show_text("Queued: it starts when the indexing in progress "
                                          "ends.")
        return job

    def reindex(self) -> None:
        collection = self.current_collection()
        if collection is not None:
            self.index_paths(None, collection)

    def remove_selected(self) -> None:
        collection = self.current_collection()
        row = self.documents_table.currentRow()
        if collection is None or row < 0:
            return
        self.ctx.documents.remove_paths(collection, [self.document_rows[row]["path"]])
        self.refresh()
        self.collections_changed.emit()

    def _rows_due(self) -> None:
        if not self.ctx.closed:
            self.refresh_documents()

    def _index_event(self, kind: str, job: IndexJob) -> None:
        if self.ctx.closed or job.reason == "chat":
            return  # queued before the app closed; files dropped on a chat show there
        if kind in ("started", "progress"):
            self.progress.show()
            self._show_progress(job.state)
            if kind == "progress" and job.collection == self.current_collection() \
                    and not self._rows_timer.isActive():
                self._rows_timer.start()  # show the files indexed so far
        elif kind == "finished":
            self._indexed(job)
        elif kind == "failed":
            self.progress.hide()
            self.progress_label.show_text(job.error_text, "error")
            self.refresh()

    def _show_progress(self, state: IndexState) -> None:
        self.progress.setMaximum(max(1, state.files_total))
        self.progress.setValue(state.files_done)
        # No rate until there is one: "0 passages/s" at the start reads like a hang.
        rate = (f"{state.chunks_per_s:.0f} passages/s" if state.chunks_done
                else "starting…")
        eta = f", about {state.eta_s:.0f} s left" if state.eta_s is not None else ""
        current = f" {Path(state.current).name}" if state.current else ""
        total = state.files_total or "?"
        self.progress_label.show_text(
            f"Indexing {state.files_done} / {total} files, {rate}{eta}.{current}")

    def _indexed(self, job: IndexJob) -> None:
        state = job.state
        if not any(j.reason != "chat" for j in self.ctx.indexer.jobs):
            self.progress.hide()
        failed = len(state.errors)
        self.progress_label.show_text(
            f"Done: {state.indexed} files indexed, "
            f"{state.skipped_unchanged} unchanged, {state.removed} removed"
            + (f", {failed} with problems (listed above)." if failed else "."),
            "error" if failed else None)
        self.refresh()
        self.collections_changed.emit()

    # --- watching --------------------------------------------------------------------
    def _watch_failed(self, exc: BaseException) -> None:
        self.progress_label.show_text(error_text(exc), "error")

    def _watch_toggled(self, on: bool) -> None:
        collection = self.current_collection()
        if collection is not None:
            self.ctx.documents.set_watch(collection, on)
            if on:
                self.ctx.start_watching()
            self.refresh()


class PassageDialog(QDialog):
    """A citation clicked: the passage highlighted among its neighbours, and "Open file"."""

    def __init__(self, ctx: AppContext, source: dict[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"[{source.get('n', '')}] {source.get('location', '')}")
        self.setAccessibleName("Cited passage")
        self.resize(760, 560)
        self.path = source["path"]
        layout = QVBoxLayout(self)
        title = QLabel(f"<b>{html.escape(source.get('location', ''))}</b> — "
                       f"{html.escape(self.path)}")
        title.setWordWrap(True)
        layout.addWidget(title)
        self.view = QTextBrowser()
        self.view.setAccessibleName("Passage text")
        layout.addWidget(self.view, 1)
        palette = self.palette()
        highlight = palette.color(palette.ColorRole.Highlight)
        mark = f"background:{highlight.name()}; color:{palette.color(palette.ColorRole.HighlightedText).name()}"
        muted = theme.readable(palette.color(palette.ColorRole.PlaceholderText),
                               palette.color(palette.ColorRole.Base)).name()
        parts = []
        try:
            for passage in passage_with_neighbours(ctx.documents, int(source["chunk_id"])):
                text = html.escape(passage.text).replace("\n", "<br>")
                if passage.cited:
                    parts.append(f'<a name="hit"></a><p style="{mark}; padding:6px">{text}</p>')
                else:
                    parts.append(f'<p style="color:{muted}">{text}</p>')
        except Exception:  # noqa: BLE001 - the document was re-indexed or removed since
            parts.append("<p><i>This passage is no longer in the index (the document changed "
                         "or was removed); the text the answer used was:</i></p>"
                         f"<p style='{mark}'>{html.escape(source.get('text', ''))}</p>")
        self.view.setHtml("".join(parts))
        self.view.scrollToAnchor("hit")
        row = QHBoxLayout()
        open_button = QPushButton("Open file")
        open_button.setAccessibleName("Open file")
        open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.path)))
        open_button.setEnabled(Path(self.path).exists())
        close = QPushButton("Close")
        close.setAccessibleName("Close")
        close.clicked.connect(self.accept)
        row.addStretch(1)
        row.addWidget(open_button)
        row.addWidget(close)
        layout.addLayout(row)
