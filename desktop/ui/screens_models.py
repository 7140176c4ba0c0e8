"""Render the Models (each tab), Documents, Settings and About screens to PNG files, at a small
and a large window size, in light and dark, offscreen (QT_QPA_PLATFORM=offscreen).

The screenshot command calls render_models_screens(out_dir, app_context); so can a test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from desktop.core.context import AppContext
from desktop.ui import theme

SIZES = ((800, 600), (1600, 1000))
MODES = ("light", "dark")


def _settle(widget: QWidget, width: int, height: int) -> None:
    widget.resize(width, height)
    widget.show()
    for _ in range(3):  # layouts, then the text fitted to the laid-out widths
        QCoreApplication.processEvents()


def wait_until(condition: Callable[[], bool], timeout_ms: int = 20_000) -> bool:
    """Run the event loop until `condition` holds (a search answered) or the timeout."""
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: loop.quit() if condition() else None)
    QTimer.singleShot(timeout_ms, loop.quit)
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    return condition()


def _save(widget: QWidget, out_dir: Path, name: str, written: list[Path]) -> None:
    path = out_dir / f"{name}.png"
    widget.grab().save(str(path))
    written.append(path)


SAMPLE_DOCUMENTS = {
    "handbook.md": "# Staff handbook\n\nStaff get 25 days of paid vacation a year.\n\n"
                   "## Travel\n\nBook trains in second class; flights need approval.\n",
    "meeting-notes.txt": "Meeting notes, 3 March\n\nThe launch moves to May. Anna owns the "
                         "press kit; Tom checks the translations.\n",
    "broken.pdf": "%PDF-1.4 this is not really a PDF",
}
SAMPLE_DOWNLOAD = {"repo": "bartowski/Llama-3.2-3B-Instruct-GGUF",
                   "model": {"name": "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
                             "files": ["Llama-3.2-3B-Instruct-Q4_K_M.gguf"],
                             "size": 2_019_377_696, "sha256": {}, "quant": "Q4_K_M",
                             "sizes": {"Llama-3.2-3B-Instruct-Q4_K_M.gguf": 2_019_377_696},
                             "revision": "main"}}


def add_sample_content(ctx: AppContext, data_dir: Path) -> None:
    """Something to look at on a fresh profile: a small indexed collection (one file fails,
    as files do) and a download left paused by an earlier run. Only where there is none."""
    import json

    from desktop import paths

    if ctx._downloads is None and not paths.downloads_path(ctx.data_dir).exists():
        # Restored like any download an earlier run left unfinished: paused, no network call.
        paths.downloads_path(ctx.data_dir).write_text(json.dumps([SAMPLE_DOWNLOAD]),
                                                      encoding="utf-8")
    if not ctx.documents.collections():
        folder = data_dir / "sample-documents"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in SAMPLE_DOCUMENTS.items():
            (folder / name).write_text(text, encoding="utf-8")
        collection = ctx.documents.create_collection("Company handbook and meeting notes")
        ctx.documents.add_paths(collection, [str(folder)], limits=ctx.index_limits())


def render_models_screens(out_dir: Path | str, app_context: AppContext,
                          data_dir: Path | None = None, hub_query: str | None = None,
                          select: dict[str, int] | None = None) -> list[Path]:
    """Write models-<tab>, documents, settings and about PNGs for each size and theme into
    `out_dir`; returns the files written. With `data_dir` (a scratch folder), a fresh profile
    gets sample content first (add_sample_content). With `hub_query`, the Search tab shows a
    real search (point HF_ENDPOINT at a Hub first). `select` picks table rows to show
    selected, by tab."""
    from desktop.ui.about_dialog import AboutDialog
    from desktop.ui.documents_page import DocumentsPage
    from desktop.ui.models_page import ModelsPage
    from desktop.ui.settings_dialog import SettingsDialog

    app = QApplication.instance()
    assert isinstance(app, QApplication), "create the QApplication first"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    select = select or {}
    if data_dir is not None:
        add_sample_content(app_context, Path(data_dir))
    try:
        for mode in MODES:
            theme.apply_theme(mode)
            for width, height in SIZES:
                suffix = f"{width}x{height}-{mode}"
                page = ModelsPage(app_context)
                if hub_query:
                    page.search_tab.search_box.setText(hub_query)
                    page.search_tab.search()
                    wait_until(lambda p=page: p.search_tab.results.rowCount() > 0)  # type: ignore[misc]
                    page.search_tab.results.selectRow(0)
                    wait_until(lambda p=page: p.search_tab.files.rowCount() > 0)  # type: ignore[misc]
                for index, name in enumerate(("recommended", "search", "installed",
                                              "downloads")):
                    page.tabs.setCurrentIndex(index)
                    table: Any = (page.recommended.table, page.search_tab.results,
                                  page.installed.table, page.downloads.table)[index]
                    if name in select and select[name] < table.rowCount():
                        table.selectRow(select[name])
                    _settle(page, width, height)
                    _save(page, out, f"models-{name}-{suffix}", written)
                page.close()
                page.deleteLater()

                documents = DocumentsPage(app_context)
                _settle(documents, width, height)
                _save(documents, out, f"documents-{suffix}", written)
                documents.close()
                documents.deleteLater()

                # Dialogs open at their own size; the large size shows them as a user
                # who stretched them would see them.
                for name, dialog in (("settings", SettingsDialog(app_context)),
                                     ("about", AboutDialog(app_context))):
                    hint = dialog.sizeHint()
                    w, h = ((max(hint.width(), 560), max(hint.height(), 380))
                            if width < 1000 else (900, 640))
                    _settle(dialog, w, h)
                    _save(dialog, out, f"{name}-{suffix}", written)
                    dialog.close()
                    dialog.deleteLater()
                QCoreApplication.processEvents()
    finally:
        theme.apply_theme(app_context.settings.get("theme") or "system")
    return written
