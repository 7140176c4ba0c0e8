"""The Documents window: collections of files and folders, indexing progress, per-file errors,
the embedding model, and the passage view that a citation opens."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
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
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.core.context import AppContext
from desktop.core.documents.index import IndexState
from desktop.core.errors import HearthError, error_text
from desktop.core.models.gguf import read_gguf
from desktop.ui.file_drop import FileDropTarget
from desktop.ui.models_page import _item, _table
from desktop.ui.tasks import run_in_background


class IndexRunner:
    """Runs one indexing job at a time off the GUI thread and exposes its live state."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.state: IndexState | None = None
        self.collection: int | None = None

    @property
    def busy(self) -> bool:
        return self.state is not None

    def start(self, collection: int, paths: list[str] | None, on_done: Any,
              on_error: Any) -> IndexState:
        state = IndexState()
        self.state, self.collection = state, collection

        def job() -> IndexState:
            embedder, model_id = self.ctx.embedder()
            options = {"embedder": embedder, "embed_model": model_id,
                       "limits": self.ctx.index_limits(), "state": state}
            if paths is None:
                return self.ctx.documents.reindex(collection, **options)
            return self.ctx.documents.add_paths(collection, paths, **options)

        def finished(result: Any) -> None:
            self.state = None
            on_done(result)

        def failed(exc: BaseException) -> None:
            self.state = None
            on_error(exc)

        run_in_background(job, on_done=finished, on_error=failed)
        return state


class DocumentsPage(FileDropTarget, QDialog):
    collections_changed = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.runner = IndexRunner(ctx)
        self.setWindowTitle("Documents")
        self.resize(1000, 620)
        layout = QVBoxLayout(self)

        embed_row = QHBoxLayout()
        self.embed_label = QLabel()
        self.embed_label.setWordWrap(True)
        choose = QPushButton("Embedding model…")
        choose.clicked.connect(self.choose_embed_model)
        embed_row.addWidget(self.embed_label, 1)
        embed_row.addWidget(choose)
        layout.addLayout(embed_row)

        body = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("Collections"))
        self.collection_list = QListWidget()
        self.collection_list.currentRowChanged.connect(lambda _: self.refresh_documents())
        left.addWidget(self.collection_list, 1)
        for label, handler in (("New…", self.new_collection), ("Rename…", self.rename),
                               ("Delete…", self.delete)):
            button = QPushButton(label)
            button.clicked.connect(handler)
            left.addWidget(button)
        body.addLayout(left, 1)

        right = QVBoxLayout()
        buttons = QHBoxLayout()
        for label, handler in (("Add files…", self.add_files), ("Add folder…", self.add_folder),
                               ("Remove selected", self.remove_selected),
                               ("Re-index", self.reindex)):
            button = QPushButton(label)
            button.clicked.connect(handler)
            buttons.addWidget(button)
        self.watch_box = QCheckBox("Watch folders for changes")
        self.watch_box.toggled.connect(self._watch_toggled)
        buttons.addWidget(self.watch_box)
        buttons.addStretch(1)
        right.addLayout(buttons)
        self.documents_table = _table(["File", "Status", "Passages", "Problem"])
        right.addWidget(self.documents_table, 1)
        self.progress = QProgressBar()
        self.progress.hide()
        self.progress_label = QLabel()
        right.addWidget(self.progress)
        right.addWidget(self.progress_label)
        body.addLayout(right, 3)
        layout.addLayout(body, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._show_progress)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._folder_changed)
        self.watcher.fileChanged.connect(self._folder_changed)
        self._pending_watch: set[int] = set()
        self.setAcceptDrops(True)
        self.refresh()

    def files_dropped(self, paths: list[str]) -> None:
        self.index_paths(paths)

    # --- collections -----------------------------------------------------------------
    def refresh(self) -> None:
        model = self.ctx.embed_model
        self.embed_label.setText(
            f"Embedding model: {Path(model).name} (keyword + meaning search)." if model else
            "No embedding model: keyword search only. Choose one (the Recommended models list "
            "has nomic-embed-text) for better answers.")
        current = self.current_collection()
        self.collection_list.blockSignals(True)
        self.collection_list.clear()
        self.collections = self.ctx.documents.collections()
        for c in self.collections:
            text = f"{c['name']}  ({c['files']} files, {c['chunks']} passages" + (
                f", {c['failed']} failed)" if c["failed"] else ")")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, c["id"])
            self.collection_list.addItem(item)
        self.collection_list.blockSignals(False)
        ids = [c["id"] for c in self.collections]
        self.collection_list.setCurrentRow(ids.index(current) if current in ids else
                                           (0 if ids else -1))
        self._arm_watcher()
        self.refresh_documents()

    def current_collection(self) -> int | None:
        item = self.collection_list.currentItem() if hasattr(self, "collection_list") else None
        return int(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def refresh_documents(self) -> None:
        collection = self.current_collection()
        rows = self.ctx.documents.documents(collection) if collection is not None else []
        self.documents_table.setRowCount(len(rows))
        self.document_rows = rows
        for row, d in enumerate(rows):
            self.documents_table.setItem(row, 0, _item(Path(d["path"]).name, d["path"]))
            color = None if d["status"] == "indexed" else "#c0392b"
            self.documents_table.setItem(row, 1, _item(d["status"], "", color))
            self.documents_table.setItem(row, 2, _item(str(d["chunk_count"])))
            self.documents_table.setItem(row, 3, _item(d["error"] or "", d["error"] or ""))
        info = next((c for c in getattr(self, "collections", []) if c["id"] == collection), None)
        self.watch_box.blockSignals(True)
        self.watch_box.setChecked(bool(info and info["watch"]))
        self.watch_box.blockSignals(False)

    def new_collection(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection", "Name:")
        if ok and name.strip():
            self.create_collection(name)

    def create_collection(self, name: str) -> int | None:
        try:
            collection = self.ctx.documents.create_collection(name)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.progress_label.setText(error_text(exc))
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
            self.ctx.documents.rename_collection(collection, name)
            self.refresh()
            self.collections_changed.emit()

    def delete(self) -> None:
        collection = self.current_collection()
        if collection is None:
            return
        if QMessageBox.question(self, "Delete collection", "Delete this collection and its "
                                "index? Your files are not touched.") == \
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

    def index_paths(self, paths: list[str] | None, collection: int | None = None) -> None:
        collection = collection if collection is not None else self.current_collection()
        if collection is None:
            collection = self.create_collection("Documents")
            if collection is None:
                return
        if self.runner.busy:
            self.progress_label.setText("Indexing is already running; try again when it ends.")
            return
        self.runner.start(collection, paths, self._indexed, self._index_failed)
        self.progress.show()
        self.timer.start()

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

    def _show_progress(self) -> None:
        state = self.runner.state
        if state is None:
            return
        self.progress.setMaximum(max(1, state.files_total))
        self.progress.setValue(state.files_done)
        eta = f", about {state.eta_s:.0f} s left" if state.eta_s is not None else ""
        self.progress_label.setText(
            f"Indexing {state.files_done} / {state.files_total} files, "
            f"{state.chunks_per_s:.0f} passages/s{eta}. {Path(state.current).name}")

    def _indexed(self, state: IndexState) -> None:
        self.timer.stop()
        self.progress.hide()
        failed = len(state.errors)
        self.progress_label.setText(
            f"Done: {state.indexed} files indexed, "
            f"{state.skipped_unchanged} unchanged, {state.removed} removed"
            + (f", {failed} with problems (listed above)." if failed else "."))
        self.refresh()
        self.collections_changed.emit()

    def _index_failed(self, exc: BaseException) -> None:
        self.timer.stop()
        self.progress.hide()
        self.progress_label.setText(error_text(exc))
        self.refresh()

    def choose_embed_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an embedding model (GGUF)",
                                              str(self.ctx.models_dir), "GGUF models (*.gguf)")
        if path:
            self.set_embed_model(path)

    def set_embed_model(self, path: str) -> bool:
        try:
            if not read_gguf(path).is_embedding_model:
                raise HearthError(f"{Path(path).name} is a chat model, not an embedding model. "
                                  "Choose one such as nomic-embed-text (Models → Recommended).")
        except HearthError as exc:
            self.progress_label.setText(error_text(exc))
            return False
        self.ctx.settings.set("embed_model", path)
        self.refresh()
        self.progress_label.setText("Re-index collections to add meaning search to them.")
        return True

    # --- watching --------------------------------------------------------------------
    def _watch_toggled(self, on: bool) -> None:
        collection = self.current_collection()
        if collection is not None:
            self.ctx.documents.set_watch(collection, on)
            self.refresh()

    def _arm_watcher(self) -> None:
        watched = self.watcher.directories() + self.watcher.files()
        if watched:
            self.watcher.removePaths(watched)
        self._watch_map: dict[str, int] = {}
        for c in self.collections:
            if not c["watch"]:
                continue
            for root in self.ctx.documents.paths(c["id"]):
                folders = [root] + [str(p) for p in Path(root).rglob("*") if p.is_dir()] \
                    if Path(root).is_dir() else [root]
                for path in folders:
                    self._watch_map[path] = c["id"]
        if self._watch_map:
            self.watcher.addPaths(list(self._watch_map))

    def _folder_changed(self, path: str) -> None:
        collection = self._watch_map.get(path)
        if collection is not None:
            self._pending_watch.add(collection)
            QTimer.singleShot(1500, self._reindex_watched)  # let a burst of writes settle

    def _reindex_watched(self) -> None:
        if self.runner.busy or not self._pending_watch:
            return
        self.index_paths(None, self._pending_watch.pop())


class PassageDialog(QDialog):
    """A citation clicked: the passage highlighted among its neighbours, and "Open file"."""

    def __init__(self, ctx: AppContext, source: dict[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"[{source.get('n', '')}] {source.get('location', '')}")
        self.resize(760, 560)
        self.path = source["path"]
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{html.escape(source.get('location', ''))}</b> — "
                                f"{html.escape(self.path)}"))
        self.view = QTextBrowser()
        layout.addWidget(self.view, 1)
        parts = []
        try:
            chunk = ctx.documents.chunk(int(source["chunk_id"]))
            neighbours = ctx.db.query(
                "SELECT id, text FROM chunks WHERE document_id = ? AND ord BETWEEN ? AND ? "
                "ORDER BY ord", (chunk["document_id"], chunk["ord"] - 1, chunk["ord"] + 1))
            for row in neighbours:
                text = html.escape(row["text"]).replace("\n", "<br>")
                if row["id"] == chunk["id"]:
                    parts.append(f'<a name="hit"></a><p style="background:#fff3b0; '
                                 f'color:#000; padding:6px">{text}</p>')
                else:
                    parts.append(f'<p style="color:#777">{text}</p>')
        except Exception:  # noqa: BLE001 - the document was re-indexed or removed since
            parts.append("<p><i>This passage is no longer in the index (the document changed "
                         "or was removed); the text the answer used was:</i></p>"
                         f"<p style='background:#fff3b0; color:#000'>"
                         f"{html.escape(source.get('text', ''))}</p>")
        self.view.setHtml("".join(parts))
        self.view.scrollToAnchor("hit")
        row = QHBoxLayout()
        open_button = QPushButton("Open file")
        open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.path)))
        open_button.setEnabled(Path(self.path).exists())
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        row.addStretch(1)
        row.addWidget(open_button)
        row.addWidget(close)
        layout.addLayout(row)
