"""Qt signals for the app-level services: their callbacks run on their own threads, and these
signals carry them onto the GUI thread (queued), where windows observe them.

One bridge per AppContext, made on first use and kept for the app's whole life, so every
window (Models, Documents, the main window) hears the same events however often it is opened.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.context import AppContext


class AppSignals(QObject):
    download_changed = Signal(object)  # a DownloadJob: queued, progress state, done, failed...
    index_event = Signal(str, object)  # ("queued"|"started"|"progress"|"finished"|"failed", job)
    library_changed = Signal()  # a model was added, removed or downloaded
    settings_changed = Signal()  # the app-wide Settings dialog saved something
    watch_failed = Signal(object)  # the folder watcher hit an error (shown, not lost)
    api_changed = Signal(str, object)  # the API server: (event, ApiStatus), see api_service.py

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._unsubscribe: list[Any] = []

    def connect_downloads(self) -> None:
        if not any(name == "downloads" for name, _ in self._unsubscribe):
            queue = self.ctx.downloads
            self._unsubscribe.append(("downloads", queue.subscribe(self._download_changed)))

    def connect_indexer(self) -> None:
        if not any(name == "indexer" for name, _ in self._unsubscribe):
            stop = self.ctx.indexer.subscribe(self.index_event.emit)
            self._unsubscribe.append(("indexer", stop))
            self.ctx.watcher.on_error = self.watch_failed.emit

    def connect_api(self) -> None:
        if not any(name == "api" for name, _ in self._unsubscribe):
            self._unsubscribe.append(("api", self.ctx.api.subscribe(self.api_changed.emit)))

    def _download_changed(self, job: Any) -> None:
        self.download_changed.emit(job)
        if job.state.status == "done":
            self.library_changed.emit()


def app_signals(ctx: AppContext) -> AppSignals:
    """The bridge of `ctx`, subscribed to its download queue and indexer."""
    signals = getattr(ctx, "_qt_signals", None)
    if signals is None:
        signals = AppSignals(ctx)
        ctx._qt_signals = signals  # type: ignore[attr-defined]
    signals.connect_downloads()
    signals.connect_indexer()
    return signals
