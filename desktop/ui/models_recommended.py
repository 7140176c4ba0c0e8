"""Models → Recommended: the curated list, with size, fit, licence and whether it is here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from desktop.core.models.catalog import CatalogEntry, load_catalog
from desktop.ui.widgets import StatusLine, button_row, item, make_table, size_text

if TYPE_CHECKING:
    from desktop.ui.models_page import ModelsPage


def installed_copy(entry: CatalogEntry, installed: list[Any]) -> Any:
    """The library entry holding this recommended file (same name and size), wherever it came
    from, so nobody downloads gigabytes twice."""
    return next((e for e in installed if e.exists and Path(e.path).name == entry.file
                 and int(e.metadata.get("file_size", 0)) == entry.size), None)


class RecommendedTab(QWidget):
    def __init__(self, page: ModelsPage) -> None:
        super().__init__()
        self.page = page
        column = QVBoxLayout(self)
        intro = QLabel("Good first models, chosen for quality per gigabyte. Each download must "
                       "match the SHA-256 listed with Hearth before it is used.")
        intro.setWordWrap(True)
        column.addWidget(intro)
        self.catalog = load_catalog()
        self.table = make_table(["Model", "Size", "Installed", "Fit", "Licence", "What it is"],
                                "Recommended models",
                                {0: 260, 1: 70, 2: 70, 3: 150, 4: 90}, prose=(5,))
        for row, entry in enumerate(self.catalog):
            self.table.insertRow(row)
            # A small tag says which models think first or read images (issue 12).
            label = entry.name + "".join(f"  [{tag}]" for tag in entry.tags)
            files = f"{entry.repo}/{entry.file}" + (
                f" + {entry.mmproj.file} (image projector)" if entry.mmproj else "")
            self.table.setItem(row, 0, item(label, files))
            # A vision model downloads its projector too: size and fit count both files.
            self.table.setItem(row, 1, item(size_text(entry.download_size)))
            fit_item, _ = page.judge.item(entry.download_size, entry.model_file().quant)
            self.table.setItem(row, 3, fit_item)
            self.table.setItem(row, 4, item(entry.license))
            self.table.setItem(row, 5, item(entry.description))
        column.addWidget(self.table, 1)
        self.status = StatusLine("Recommended status")
        column.addWidget(self.status)
        button_row(column, [("Download selected", self.download_selected)], align_right=True)

    def mark_installed(self, entries: list[Any]) -> None:
        for row, entry in enumerate(self.catalog):
            have = installed_copy(entry, entries) is not None
            self.table.setItem(row, 2, item("✓ yes" if have else ""))

    def download_selected(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            self.status.show_text("Select a model first.")
            return
        entry = self.catalog[row]
        have = installed_copy(entry, self.page.ctx.library.list())
        if have is not None:
            self.status.show_text(f"{entry.name} is already on this computer: {have.path}")
            return
        self.status.show_text("")
        # The catalog pins the commit, size and SHA-256: no listing call is needed, and the
        # file must match what Hearth shipped.
        self.page.start_download(entry.repo, entry.model_file())
