"""Models → Search the Hub: repositories, their GGUF files with fit and quality, download."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from desktop.core.errors import error_text
from desktop.core.models import hub
from desktop.core.models.fit import recommend
from desktop.core.models.quant import ModelFile, quality_note
from desktop.core.models.token import get_token
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import StatusLine, button, button_row, item, make_table, size_text

if TYPE_CHECKING:
    from desktop.ui.models_page import ModelsPage


class SearchTab(QWidget):
    def __init__(self, page: ModelsPage) -> None:
        super().__init__()
        self.page = page
        self.found: list[dict[str, Any]] = []
        self.repo_models: list[ModelFile] = []
        self.current_repo: str | None = None
        self._request = 0  # answers to an older search or listing are dropped
        column = QVBoxLayout(self)
        row = QHBoxLayout()
        self.search_box = QLineEdit()
        self.search_box.setAccessibleName("Search the Hub")
        self.search_box.setPlaceholderText("Search GGUF models, e.g. llama 3 instruct")
        self.search_box.returnPressed.connect(self.search)
        self.sort_box = QComboBox()
        self.sort_box.setAccessibleName("Sort results by")
        self.sort_box.addItems(["downloads", "recent", "likes", "trending"])
        sort_label = QLabel("sorted by")
        sort_label.setBuddy(self.sort_box)
        row.addWidget(self.search_box, 1)
        row.addWidget(sort_label)
        row.addWidget(self.sort_box)
        row.addWidget(button("Search", self.search))
        row.addWidget(button("Hugging Face token…", page.ask_token,
                             "Token for gated or private repositories"))
        column.addLayout(row)
        self.results = make_table(["Repository", "Downloads", "Likes", "Updated", "Licence",
                                   "Access"], "Repositories found",
                                  {0: 280, 1: 90, 2: 60, 3: 90, 4: 90})
        self.results.itemSelectionChanged.connect(self._repo_selected)
        column.addWidget(self.results, 3)
        self.files = make_table(["File", "Quant", "Size", "Fit", "Quality"], "GGUF files",
                                {0: 280, 1: 70, 2: 80, 3: 150}, prose=(4,))
        column.addWidget(self.files, 2)
        self.status = StatusLine("Search status")
        self.status.show_text("Search the Hugging Face Hub for GGUF models, then pick a file. "
                              "Nothing leaves this computer until you press Search.")
        column.addWidget(self.status)
        button_row(column, [("Download selected file", self.download_selected)],
                   align_right=True)

    def _failed(self, request: int) -> Any:
        def show(exc: BaseException) -> None:
            if request == self._request:
                self.status.show_text(error_text(exc), "error")
        return show

    def search(self) -> None:
        query = self.search_box.text().strip()
        self._request += 1
        request = self._request
        self.status.show_text(f"Searching the Hub for “{query}”…")
        sort = self.sort_box.currentText()
        run_in_background(lambda: hub.search(query, sort=sort, limit=30, token=get_token()),
                          on_done=lambda results: self._show_results(request, results),
                          on_error=self._failed(request))

    def _show_results(self, request: int, results: list[dict[str, Any]]) -> None:
        if request != self._request:
            return
        self.results.setRowCount(0)
        self.files.setRowCount(0)
        self.found = results
        for r in results:
            row = self.results.rowCount()
            self.results.insertRow(row)
            values = [r["repo"], f"{r['downloads'] or 0:,}", str(r["likes"] or 0),
                      (r["last_modified"] or "")[:10], r["license"] or "",
                      "gated: needs a token" if r["gated"] else "open"]
            for col, value in enumerate(values):
                self.results.setItem(row, col, item(value))
        # A success replaces whatever error an earlier attempt left here.
        self.status.show_text(f"{len(results)} repositories found. Select one to see its "
                              "files." if results else "Nothing found.")

    def _repo_selected(self) -> None:
        row = self.results.currentRow()
        if row < 0 or row >= len(self.found):
            return
        repo = self.found[row]["repo"]
        self.current_repo = repo
        self._request += 1
        request = self._request
        self.status.show_text(f"Listing the files of {repo}…")
        run_in_background(lambda: hub.repo_files(repo, token=get_token()),
                          on_done=lambda listing: self._show_files(request, listing),
                          on_error=self._failed(request))

    def _show_files(self, request: int, listing: hub.RepoFiles) -> None:
        if request != self._request:
            return
        self.files.setRowCount(0)
        self.repo_models = listing.models
        fits = []
        for model in listing.models:
            row = self.files.rowCount()
            self.files.insertRow(row)
            fit_item, fit = self.page.judge.item(model.size, model.quant)
            fits.append((model.name, model.quant, fit))
            name = model.name + (f"  ({len(model.files)} parts)" if model.split else "")
            self.files.setItem(row, 0, item(name))
            self.files.setItem(row, 1, item(model.quant or "?"))
            self.files.setItem(row, 2, item(size_text(model.size)))
            self.files.setItem(row, 3, fit_item)
            self.files.setItem(row, 4, item(quality_note(model.quant)))
        best = recommend(fits)
        for row, model in enumerate(listing.models):
            if model.name == best:
                cell = self.files.item(row, 0)
                if cell is not None:
                    cell.setText("★ " + cell.text())
                self.files.selectRow(row)
        self.status.show_text(f"{len(listing.models)} GGUF models in {listing.summary['repo']}."
                              + (f" ★ marks the best that fits this machine: {best}." if best
                                 else " None of them fits this machine."))

    def download_selected(self) -> None:
        row = self.files.currentRow()
        if row < 0 or self.current_repo is None or row >= len(self.repo_models):
            self.status.show_text("Select a file first.")
            return
        self.page.start_download(self.current_repo, self.repo_models[row])
