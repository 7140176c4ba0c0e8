"""The Models window: Recommended, Search the Hub, Installed, and Downloads, one module per tab.

Every Hub call, header read and download runs off the GUI thread; the download queue belongs
to the app (AppContext.downloads) and this window only observes it, so closing the window
never stops a download. Each tab has its own status line: an error shows where it happened
and the next success there replaces it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QDialog, QInputDialog, QLineEdit, QTabWidget, QVBoxLayout, QWidget

from desktop.core.context import AppContext
from desktop.core.errors import error_text
from desktop.core.models.download_queue import DownloadJob, DownloadQueue
from desktop.core.models.quant import ModelFile
from desktop.core.models.token import set_token
from desktop.ui.bridge import app_signals
from desktop.ui.models_downloads import DownloadsTab
from desktop.ui.models_fit import FitJudge
from desktop.ui.models_installed import InstalledTab
from desktop.ui.models_recommended import RecommendedTab
from desktop.ui.models_search import SearchTab
from desktop.ui.tasks import run_in_background
from desktop.ui.widgets import THEME_EVENTS, StatusLine, retone, size_text

RECOMMENDED, SEARCH, INSTALLED, DOWNLOADS = range(4)


class ModelsPage(QDialog):
    # Kept for callers of the window; AppSignals.library_changed is the app-wide one.
    library_changed = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.signals = app_signals(ctx)
        self.signals.library_changed.connect(self.library_changed)
        self.setWindowTitle("Models")
        self.setAccessibleName("Models")
        self.resize(1000, 640)
        self.judge = FitJudge(int(ctx.settings.get("n_ctx") or 4096))

        layout = QVBoxLayout(self)
        self.machine_label = StatusLine("This machine")
        self.machine_label.show_text(self.judge.machine_text())
        layout.addWidget(self.machine_label)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Models sections")
        self.recommended = RecommendedTab(self)
        self.search_tab = SearchTab(self)
        self.installed = InstalledTab(self)
        self.downloads = DownloadsTab(self)
        self.tabs.addTab(self.recommended, "Recommended")
        self.tabs.addTab(self.search_tab, "Search the Hub")
        self.tabs.addTab(self.installed, "Installed")
        self.tabs.addTab(self.downloads, "Downloads")
        layout.addWidget(self.tabs, 1)
        # Bound methods, not lambdas: Qt drops them when this window is deleted.
        self.signals.library_changed.connect(self._library_changed)
        self.signals.settings_changed.connect(self._settings_changed)
        self.installed.refresh()
        self._offer_paused()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in THEME_EVENTS:
            retone(self)  # fit labels and errors stay readable after a theme switch

    @property
    def queue(self) -> DownloadQueue:
        return self.ctx.downloads

    def _offer_paused(self) -> None:
        """Downloads the last run left unfinished wait, paused, in the Downloads tab."""
        paused = [j for j in self.queue.jobs if j.state.status == "paused"]
        if not paused or self.queue.active():
            return
        self.tabs.setCurrentIndex(DOWNLOADS)
        kept = sum(j.state.done for j in paused)
        count = len(paused)
        what = (f"{size_text(kept)} downloaded so far are kept" if kept else
                "nothing had been downloaded yet")
        self.downloads.status.show_text(
            f"{count} download{'s' if count > 1 else ''} stopped when Hearth closed; {what}. "
            "Select one and press Resume.")

    def _library_changed(self) -> None:
        if not self.ctx.closed:
            self.installed.refresh()

    def _settings_changed(self) -> None:
        n_ctx = int(self.ctx.settings.get("n_ctx") or 4096)
        if n_ctx != self.judge.n_ctx:
            self.judge.n_ctx = n_ctx
            self.machine_label.show_text(self.judge.machine_text())
            self.installed.refresh()
        self.installed.show_folder()

    def start_download(self, repo: str, model: ModelFile) -> DownloadJob:
        job = self.queue.add(repo, model)
        self.tabs.setCurrentIndex(DOWNLOADS)
        self.downloads.status.show_text(f"Queued {model.name} ({size_text(model.size)}).")
        return job

    def ask_token(self) -> None:
        token, ok = QInputDialog.getText(self, "Hugging Face token",
                                         "Token for gated repositories (kept in the system "
                                         "keychain):", QLineEdit.EchoMode.Password)
        if ok and token.strip():
            self.store_token(token)

    def store_token(self, token: str) -> None:
        status = self.tabs.currentWidget().status  # type: ignore[attr-defined]

        def stored(in_keychain: bool) -> None:
            waiting = [j for j in self.queue.jobs
                       if j.state.status == "failed" and j.state.needs_token]
            for job in waiting:  # the downloads that stopped for want of a token go on
                self.queue.resume(job)
            status.show_text(("Token stored in the system keychain." if in_keychain else
                              "No system keychain works here: the token is kept until Hearth "
                              "closes.")
                             + (f" Retrying {len(waiting)} download(s)." if waiting else ""))

        run_in_background(set_token, token, on_done=stored,
                          on_error=lambda exc: status.show_text(error_text(exc), "error"))
