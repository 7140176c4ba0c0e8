"""The Models window: Recommended, Search the Hub, Installed, and Downloads with progress.

Every Hub call and every download runs off the GUI thread (ui.tasks / DownloadQueue); the
window only renders plain results, so it never blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop import paths
from desktop.core.context import AppContext
from desktop.core.errors import error_text
from desktop.core.models import hub
from desktop.core.models.catalog import CatalogEntry, load_catalog
from desktop.core.models.download_queue import PENDING, DownloadJob, DownloadQueue
from desktop.core.models.fit import (
    Memory,
    detect_memory,
    estimate_from_size,
    estimate_from_summary,
    judge,
    recommend,
)
from desktop.core.models.quant import ModelFile, quality_note
from desktop.core.models.token import get_token, set_token
from desktop.ui.tasks import run_in_background

FIT_COLORS = {"gpu_full": "#1e8449", "gpu_partial": "#2874a6", "cpu": "#7d6608",
              "too_large": "#c0392b"}
FIT_SHORT = {"gpu_full": "Runs fully on GPU", "gpu_partial": "Partly on GPU",
             "cpu": "CPU only, fits in RAM", "too_large": "Too large"}


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _table_with_action(column: QVBoxLayout, table: QTableWidget, label: str,
                       action: Any) -> None:
    """A table that takes the free height, with its action button under it on the right."""
    column.addWidget(table, 1)
    button = QPushButton(label)
    button.clicked.connect(action)
    column.addWidget(button, 0, Qt.AlignmentFlag.AlignRight)


def _button_row(column: QVBoxLayout, actions: list[tuple[str, Any]]) -> None:
    row = QHBoxLayout()
    for label, handler in actions:
        button = QPushButton(label)
        button.clicked.connect(handler)
        row.addWidget(button)
    row.addStretch(1)
    column.addLayout(row)


def _installed_copy(entry: CatalogEntry, installed: list[Any]) -> Any:
    """The library entry holding this recommended file (same name and size), wherever it came
    from, so nobody downloads gigabytes twice."""
    return next((e for e in installed if e.exists and Path(e.path).name == entry.file
                 and int(e.metadata.get("file_size", 0)) == entry.size), None)


def _item(text: str, tooltip: str = "", color: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if tooltip:
        item.setToolTip(tooltip)
    if color:
        item.setForeground(QBrush(QColor(color)))
    return item


class _QueueRelay(QObject):
    changed = Signal(object)


class ModelsPage(QDialog):
    library_changed = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Models")
        self.resize(1000, 640)
        self.memory: Memory = detect_memory()
        self.n_ctx = int(ctx.settings.get("n_ctx") or 4096)
        self.relay = _QueueRelay()
        self.relay.changed.connect(self._job_changed)
        self.queue = DownloadQueue(ctx.models_dir, ctx.library, token=get_token,
                                   on_change=self.relay.changed.emit,
                                   store=paths.downloads_path(ctx.data_dir))
        self.repo_models: list[ModelFile] = []
        self.current_repo: str | None = None

        layout = QVBoxLayout(self)
        machine = (f"This machine: {self.memory.available_ram / 1e9:.1f} GB RAM available"
                   + (f", {self.memory.free_vram / 1e9:.1f} GB free on {self.memory.gpu_name}"
                      if self.memory.free_vram else ", no GPU offload detected")
                   + f". Estimates for a {self.n_ctx}-token context.")
        self.machine_label = QLabel(machine)
        layout.addWidget(self.machine_label)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._recommended_tab(), "Recommended")
        self.tabs.addTab(self._search_tab(), "Search the Hub")
        self.tabs.addTab(self._installed_tab(), "Installed")
        self.tabs.addTab(self._downloads_tab(), "Downloads")
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.status)
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._refresh_progress)
        self.refresh_installed()
        if self.queue.jobs:  # unfinished downloads from an earlier run, kept paused
            self._refresh_progress()
            self.tabs.setCurrentIndex(3)
            count = len(self.queue.jobs)
            self.show_status(f"{count} download{'s' if count > 1 else ''} stopped when Hearth "
                             "closed; the bytes are kept. Select one and press Resume.")

    # --- helpers -------------------------------------------------------------------
    def show_error(self, exc: BaseException) -> None:
        self.show_status(error_text(exc), error=True)

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color:#c0392b" if error else "")
        self.status.setText(text)

    def _fit_item(self, size: int, quant: str | None, summary: dict[str, Any] | None = None
                  ) -> tuple[QTableWidgetItem, Any]:
        if summary and "kv_bytes_per_token" in summary:
            # From the header summary stored in the library: no file read on the GUI thread.
            fit = judge(estimate_from_summary(summary, self.n_ctx), self.memory)
        else:
            fit = judge(estimate_from_size(size, quant, self.n_ctx), self.memory)
        return _item(FIT_SHORT[fit.label], fit.text, FIT_COLORS[fit.label]), fit

    # --- recommended ---------------------------------------------------------------
    def _recommended_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        column.addWidget(QLabel("Good first models, chosen for quality per gigabyte. Each download "
                                "must match the SHA-256 listed with Hearth before it is used."))
        self.catalog = load_catalog()
        self.catalog_table = _table(["Model", "Size", "Installed", "Fit", "Licence",
                                     "What it is"])
        for entry in self.catalog:
            row = self.catalog_table.rowCount()
            self.catalog_table.insertRow(row)
            self.catalog_table.setItem(row, 0, _item(entry.name, f"{entry.repo}/{entry.file}"))
            self.catalog_table.setItem(row, 1, _item(_size(entry.size)))
            fit_item, _ = self._fit_item(entry.size, entry.model_file().quant)
            self.catalog_table.setItem(row, 3, fit_item)
            self.catalog_table.setItem(row, 4, _item(entry.license))
            self.catalog_table.setItem(row, 5, _item(entry.description))
        _table_with_action(column, self.catalog_table, "Download selected",
                           self._download_catalog)
        return page

    def _download_catalog(self) -> None:
        row = self.catalog_table.currentRow()
        if row < 0:
            self.show_status("Select a model first.")
            return
        entry = self.catalog[row]
        have = _installed_copy(entry, self.ctx.library.list())
        if have is not None:
            self.show_status(f"{entry.name} is already on this computer: {have.path}")
            return
        # The catalog pins the commit, size and SHA-256: no listing call is needed, and the
        # file must match what Hearth shipped.
        self.start_download(entry.repo, entry.model_file())

    # --- search ----------------------------------------------------------------------
    def _search_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        row = QHBoxLayout()
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search GGUF models, e.g. llama 3 instruct")
        self.search_box.returnPressed.connect(self.search)
        self.sort_box = QComboBox()
        self.sort_box.addItems(["downloads", "recent", "likes", "trending"])
        go = QPushButton("Search")
        go.clicked.connect(self.search)
        token = QPushButton("Hugging Face token…")
        token.clicked.connect(self.ask_token)
        row.addWidget(self.search_box, 1)
        row.addWidget(QLabel("sorted by"))
        row.addWidget(self.sort_box)
        row.addWidget(go)
        row.addWidget(token)
        column.addLayout(row)
        self.results = _table(["Repository", "Downloads", "Likes", "Updated", "Licence", "Access"])
        self.results.itemSelectionChanged.connect(self._repo_selected)
        column.addWidget(self.results, 1)
        self.files = _table(["File", "Quant", "Size", "Fit", "Quality"])
        _table_with_action(column, self.files, "Download selected file", self._download_file)
        return page

    def search(self) -> None:
        query = self.search_box.text().strip()
        self.show_status(f"Searching the Hub for “{query}”…")
        sort = self.sort_box.currentText()
        run_in_background(lambda: hub.search(query, sort=sort, limit=30, token=get_token()),
                          on_done=self._show_results,
                          on_error=self.show_error)

    def _show_results(self, results: list[dict[str, Any]]) -> None:
        self.results.setRowCount(0)
        self.found = results
        for r in results:
            row = self.results.rowCount()
            self.results.insertRow(row)
            values = [r["repo"], f"{r['downloads'] or 0:,}", str(r["likes"] or 0),
                      (r["last_modified"] or "")[:10], r["license"] or "",
                      "gated: needs a token" if r["gated"] else "open"]
            for col, value in enumerate(values):
                self.results.setItem(row, col, _item(value))
        self.show_status(f"{len(results)} repositories found." if results else "Nothing found.")

    def _repo_selected(self) -> None:
        row = self.results.currentRow()
        if row < 0:
            return
        repo = self.found[row]["repo"]
        self.current_repo = repo
        self.show_status(f"Listing the files of {repo}…")
        run_in_background(lambda: hub.repo_files(repo, token=get_token()),
                          on_done=self._show_files,
                          on_error=self.show_error)

    def _show_files(self, listing: hub.RepoFiles) -> None:
        self.files.setRowCount(0)
        self.repo_models = listing.models
        fits = []
        for model in listing.models:
            row = self.files.rowCount()
            self.files.insertRow(row)
            fit_item, fit = self._fit_item(model.size, model.quant)
            fits.append((model.name, model.quant, fit))
            name = model.name + (f"  ({len(model.files)} parts)" if model.split else "")
            self.files.setItem(row, 0, _item(name))
            self.files.setItem(row, 1, _item(model.quant or "?"))
            self.files.setItem(row, 2, _item(_size(model.size)))
            self.files.setItem(row, 3, fit_item)
            self.files.setItem(row, 4, _item(quality_note(model.quant)))
        best = recommend(fits)
        for row, model in enumerate(listing.models):
            if model.name == best:
                self.files.item(row, 0).setText("★ " + self.files.item(row, 0).text())
                self.files.selectRow(row)
        self.show_status(f"{len(listing.models)} GGUF models in {listing.summary['repo']}."
                         + (f" ★ marks the best that fits this machine: {best}." if best else
                            " None of them fits this machine."))

    def _download_file(self) -> None:
        row = self.files.currentRow()
        if row < 0 or self.current_repo is None:
            self.show_status("Select a file first.")
            return
        self.start_download(self.current_repo, self.repo_models[row])

    def ask_token(self) -> None:
        token, ok = QInputDialog.getText(self, "Hugging Face token",
                                         "Token for gated repositories (kept in the system "
                                         "keychain):", QLineEdit.EchoMode.Password)
        if ok and token.strip():
            self.store_token(token)

    def store_token(self, token: str) -> None:
        def stored(in_keychain: bool) -> None:
            waiting = [j for j in self.queue.jobs
                       if j.state.status == "failed" and j.state.needs_token]
            for job in waiting:  # the downloads that stopped for want of a token go on
                self.queue.resume(job)
            self.show_status(("Token stored in the system keychain." if in_keychain else
                              "No system keychain works here: the token is kept until Hearth "
                              "closes.")
                             + (f" Retrying {len(waiting)} download(s)." if waiting else ""))

        run_in_background(set_token, token, on_done=stored, on_error=self.show_error)

    # --- downloads -------------------------------------------------------------------
    def _downloads_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.downloads = _table(["Model", "Progress", "Status", "Speed / ETA"])
        # The bar is a cell widget, which "resize to contents" does not measure.
        self.downloads.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.Interactive)
        self.downloads.setColumnWidth(1, 260)
        column.addWidget(self.downloads, 1)
        _button_row(column, [("Pause", self._pause), ("Resume", self._resume),
                             ("Cancel", self._cancel), ("Hugging Face token…", self.ask_token)])
        return page

    def start_download(self, repo: str, model: ModelFile) -> DownloadJob:
        job = self.queue.add(repo, model)
        self.tabs.setCurrentIndex(3)
        self.show_status(f"Queued {model.name} ({_size(model.size)}).")
        return job

    def _job_changed(self, job: DownloadJob) -> None:
        self._refresh_progress()
        if job.state.status == "done":
            self.refresh_installed()
            self.library_changed.emit()
            entry = self.ctx.library.find(job.path) if job.path else None
            if entry is not None and entry.is_embedding and not self.ctx.settings.get(
                    "embed_model"):
                # Someone downloading an embedding model wants better document search; with
                # none chosen yet there is nothing to override.
                self.ctx.settings.set("embed_model", entry.path)
                self.show_status(f"{job.model.name} is downloaded, verified and now used for "
                                 "document search. Re-index collections to add meaning search.")
            else:
                self.show_status(f"{job.model.name} is downloaded, verified and ready.")
        elif job.state.status == "failed":
            self.show_status(job.state.error + (" Use “Hugging Face token…”; the download "
                                                "retries by itself." if job.state.needs_token
                                                else ""), error=True)
        active = any(j.state.status in ("downloading", "verifying") for j in self.queue.jobs)
        if active and not self.timer.isActive():
            self.timer.start()
        elif not active:
            self.timer.stop()

    def _refresh_progress(self) -> None:
        jobs = self.queue.jobs
        self.downloads.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            s = job.state
            self.downloads.setItem(row, 0, _item(job.model.name, job.repo))
            bar = self.downloads.cellWidget(row, 1)
            if not isinstance(bar, QProgressBar):
                bar = QProgressBar()
                bar.setMaximum(1000)
                self.downloads.setCellWidget(row, 1, bar)
            bar.setValue(int(s.fraction * 1000))
            bar.setFormat(f"{_size(s.done)} / {_size(s.total or job.model.size)}")
            self.downloads.setItem(row, 2, _item(s.status + (f": {s.error}" if s.error else "")))
            eta = f"{s.eta_s:.0f} s left" if s.eta_s is not None else ""
            speed = f"{s.speed / 1e6:.1f} MB/s  {eta}" if s.status == "downloading" else ""
            self.downloads.setItem(row, 3, _item(speed))

    def _selected_job(self) -> DownloadJob | None:
        row = self.downloads.currentRow()
        return self.queue.jobs[row] if 0 <= row < len(self.queue.jobs) else None

    def _pause(self) -> None:
        if job := self._selected_job():
            self.queue.pause(job)

    def _resume(self) -> None:
        job = self._selected_job()
        if job and job.state.status in ("paused", "failed", "cancelled"):
            self.queue.resume(job)

    def _cancel(self) -> None:
        if job := self._selected_job():
            self.queue.cancel(job)

    # --- installed -------------------------------------------------------------------
    def _installed_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.installed = _table(["Model", "Architecture", "Parameters", "Quant", "Context",
                                 "Size", "Chat template", "Fit", "Path"])
        column.addWidget(self.installed, 1)
        folder_row = QHBoxLayout()
        self.folder_label = QLabel()
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder_row.addWidget(self.folder_label, 1)
        change = QPushButton("Change folder…")
        change.clicked.connect(self._choose_folder)
        folder_row.addWidget(change)
        column.addLayout(folder_row)
        self._show_folder()
        _button_row(column, [("Add GGUF file…", self._add_file),
                             ("Find models from other apps", self._scan),
                             ("Defaults for this model…", self._edit_defaults),
                             ("Remove…", self._remove)])
        return page

    def _mark_installed_catalog(self, entries: list[Any]) -> None:
        for row, entry in enumerate(self.catalog):
            have = _installed_copy(entry, entries) is not None
            self.catalog_table.setItem(row, 2, _item("✓ yes" if have else ""))

    def refresh_installed(self) -> None:
        entries = self.ctx.library.list()
        self._mark_installed_catalog(entries)
        self.installed_entries = entries
        self.installed.setRowCount(len(entries))
        for row, e in enumerate(entries):
            m = e.metadata
            values = [e.name, m.get("architecture", "?"), m.get("parameter_label", "?"),
                      m.get("quantization", "?"), str(m.get("context_length") or "?"),
                      _size(int(m.get("file_size", 0))),
                      "— (embedding model)" if e.is_embedding
                      else "yes" if m.get("has_chat_template") else "no (base model)"]
            for col, value in enumerate(values):
                self.installed.setItem(row, col, _item(value))
            if e.exists:
                fit_item, _ = self._fit_item(int(m.get("file_size", 0)), m.get("quantization"),
                                             summary=m)
            else:
                fit_item = _item("file missing", e.path, "#c0392b")
            self.installed.setItem(row, 7, fit_item)
            self.installed.setItem(row, 8, _item(e.path))

    def _show_folder(self) -> None:
        self.folder_label.setText(f"New downloads go to {self.ctx.models_dir}")

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder for downloaded models",
                                                  str(self.ctx.models_dir))
        if chosen:
            self.set_models_folder(chosen)

    def set_models_folder(self, folder: str) -> None:
        busy = [j for j in self.queue.jobs if j.state.status in PENDING]
        if busy:
            # Their .part files live in the current folder; moving now would orphan them.
            self.show_status("Finish or cancel the downloads in progress before changing the "
                             "folder.", error=True)
            return
        try:
            target = self.ctx.set_models_dir(folder)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.show_error(exc)
            return
        self.queue.models_dir = target
        self._show_folder()
        self.show_status(f"New downloads go to {target}. Installed models stay where they are.")

    def _add_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Add GGUF models", str(Path.home()),
                                                 "GGUF models (*.gguf)")
        for path in chosen:
            self.add_path(path)

    def add_path(self, path: str, source: str = "user") -> None:
        try:
            self.ctx.library.add(path, source=source)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.show_error(exc)
            return
        self.refresh_installed()
        self.library_changed.emit()

    def _scan(self) -> None:
        from desktop.core.models.scan import scan

        self.show_status("Looking for models in LM Studio, GPT4All, Jan, Ollama and the HF cache…")
        run_in_background(scan, on_done=self._offer_found,
                          on_error=lambda e: self.show_status(str(e), True))

    def _offer_found(self, found: list[tuple[str, Path]]) -> None:
        known = {e.path for e in self.ctx.library.list()}
        new = [(app, path) for app, path in found if str(path) not in known]
        if not new:
            self.show_status("No new models found in other apps.")
            return
        listing = "\n".join(f"{app}: {path}" for app, path in new[:20])
        answer = QMessageBox.question(self, "Models found",
                                      f"Add these {len(new)} models in place (no copy)?\n\n"
                                      + listing)
        if answer == QMessageBox.StandardButton.Yes:
            for app, path in new:
                self.add_path(str(path), source=app)
            self.show_status(f"Added {len(new)} models.")

    def _selected_entry(self) -> Any:
        row = self.installed.currentRow()
        return self.installed_entries[row] if 0 <= row < len(self.installed_entries) else None

    def _edit_defaults(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        from desktop.ui.chat_settings import ChatSettingsDialog

        dialog = ChatSettingsDialog(entry.settings.get("system_prompt", ""),
                                    {**self._app_defaults(), **entry.settings}, self,
                                    model_fields=True)
        dialog.setWindowTitle(f"Defaults for {entry.name}")
        dialog.make_default.hide()
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.save_defaults(entry, *dialog.values())

    def _app_defaults(self) -> dict[str, Any]:
        layers = self.ctx.settings.get("n_gpu_layers")
        return {"n_ctx": int(self.ctx.settings.get("n_ctx") or 4096),
                "n_gpu_layers": -1 if layers is None else layers,
                **self.ctx.settings.get("sampling", {})}

    def save_defaults(self, entry: Any, system: str, values: dict[str, Any]) -> None:
        """Keep only what differs from the app-wide defaults, so a later change there still
        reaches this model for everything the user did not set for it."""
        app = self._app_defaults()
        own = {k: v for k, v in values.items() if v != app.get(k)}  # -1 GPU layers = auto
        if system:
            own["system_prompt"] = system
        self.ctx.library.set_settings(entry.path, own)
        self.show_status(f"Saved defaults for {entry.name}.")

    def remove_entry(self, entry: Any, delete_file: bool) -> None:
        self.ctx.library.remove(entry.path)
        path = Path(entry.path)
        freed = 0
        if delete_file and path.is_file():
            freed = path.stat().st_size
            path.unlink()
        self.refresh_installed()
        self.library_changed.emit()
        self.show_status(f"Removed {entry.name}" + (f"; {_size(freed)} freed." if freed else "."))

    def _remove(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        ours = Path(entry.path).resolve().is_relative_to(self.ctx.models_dir.resolve())
        text = (f"Remove {entry.name} and delete its file ({_size(entry.metadata.get('file_size', 0))})?"
                if ours else f"Remove {entry.name} from the library? The file stays where it is "
                "(Hearth did not download it).")
        if QMessageBox.question(self, "Remove model", text) == QMessageBox.StandardButton.Yes:
            self.remove_entry(entry, delete_file=ours)
