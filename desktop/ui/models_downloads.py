"""Models → Downloads: the app's download queue with progress, speed and what went wrong.

The queue lives on the app context for the app's whole life (downloads go on while this
window is closed); this tab only observes it through the app's signals.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QProgressBar, QVBoxLayout, QWidget

from desktop.core.models.download_queue import DownloadJob
from desktop.ui.widgets import StatusLine, button_row, item, make_table, size_text

if TYPE_CHECKING:
    from desktop.ui.models_page import ModelsPage

STALLED_S = 5.0  # no new byte for this long while "downloading": say so, not "0.0 MB/s"
STATUS_WORDS = {"queued": "Waiting", "downloading": "Downloading", "verifying": "Checking SHA-256",
                "done": "Done", "paused": "Paused", "cancelled": "Cancelled", "failed": "Failed"}


def speed_text(job: DownloadJob, stalled: bool) -> str:
    s = job.state
    if s.status != "downloading":
        return ""
    if s.speed <= 0:
        return "connecting…"
    if stalled:
        return "waiting for the server…"
    eta = f", {s.eta_s:.0f} s left" if s.eta_s is not None else ""
    return f"{s.speed / 1e6:.1f} MB/s{eta}"


def status_text(job: DownloadJob) -> str:
    s = job.state
    words = STATUS_WORDS.get(s.status, s.status)
    if s.status == "paused":
        words += (f": {size_text(s.done)} kept" if s.done else ": nothing downloaded yet")
    return words + (f": {s.error}" if s.error else "")


class DownloadsTab(QWidget):
    def __init__(self, page: ModelsPage) -> None:
        super().__init__()
        self.page = page
        self.queue = page.ctx.downloads
        self._progress: dict[int, tuple[int, float]] = {}  # id(job) -> (bytes, when they changed)
        column = QVBoxLayout(self)
        # Status last and stretched: a long message elides in its own cell instead of pushing
        # Speed / ETA out of sight.
        self.table = make_table(["Model", "Progress", "Speed / ETA", "Status"], "Downloads",
                                {0: 200, 1: 170, 2: 130}, stretch=3, prose=(3,))
        self.table.itemSelectionChanged.connect(self._selected)
        column.addWidget(self.table, 1)
        self.status = StatusLine("Downloads status")
        column.addWidget(self.status)
        button_row(column, [("Pause", self.pause), ("Resume", self.resume),
                            ("Cancel", self.cancel), ("Hugging Face token…", page.ask_token)])
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.refresh)
        page.signals.download_changed.connect(self._job_changed)
        self.refresh()
        if self.queue.active():
            self.timer.start()

    def _job_changed(self, job: DownloadJob) -> None:
        if self.page.ctx.closed:
            return  # queued before the app closed
        self.refresh()
        s = job.state
        if s.status == "done":
            if self.page.ctx.embed_model == str(job.path):
                self.status.show_text(f"{job.model.name} is downloaded, verified and now used "
                                      "for document search. Re-index collections to add meaning "
                                      "search.", "good")
            else:
                self.status.show_text(f"{job.model.name} is downloaded, verified and ready.",
                                      "good")
        elif s.status == "failed":
            self.status.show_text(s.error + (" Use “Hugging Face token…”; the download retries "
                                             "by itself." if s.needs_token else ""), "error")
        elif s.status in ("queued", "downloading") and self.status.tone == "error":
            self.status.show_text("")  # resumed: the old error is no longer true
        if self.queue.active():
            self.timer.start()
        else:
            self.timer.stop()

    def refresh(self) -> None:
        jobs = self.queue.jobs
        now = time.monotonic()
        self.table.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            s = job.state
            before = self._progress.get(id(job))
            if before is None or before[0] != s.done:
                self._progress[id(job)] = before = (s.done, now)
            stalled = now - before[1] > STALLED_S
            self.table.setItem(row, 0, item(job.model.name, f"{job.repo}/{job.model.name}"))
            bar = self.table.cellWidget(row, 1)
            if not isinstance(bar, QProgressBar):
                bar = QProgressBar()
                bar.setMaximum(1000)
                bar.setAccessibleName("Download progress")
                self.table.setCellWidget(row, 1, bar)
            bar.setValue(int(s.fraction * 1000))
            bar.setFormat(f"{size_text(s.done)} / {size_text(s.total or job.model.size)}")
            self.table.setItem(row, 2, item(speed_text(job, stalled)))
            tone = "error" if s.status == "failed" else "good" if s.status == "done" else None
            self.table.setItem(row, 3, item(status_text(job), tone=tone))

    def _selected(self) -> None:
        """The whole message of a failed download, which its cell may cut."""
        job = self.selected_job()
        if job is not None and job.state.status == "failed" and job.state.error:
            self.status.show_text(job.state.error, "error")

    def selected_job(self) -> DownloadJob | None:
        row = self.table.currentRow()
        jobs = self.queue.jobs
        return jobs[row] if 0 <= row < len(jobs) else None

    def pause(self) -> None:
        if job := self.selected_job():
            self.queue.pause(job)

    def resume(self) -> None:
        job = self.selected_job()
        if job and job.state.status in ("paused", "failed", "cancelled"):
            self.queue.resume(job)

    def cancel(self) -> None:
        if job := self.selected_job():
            self.queue.cancel(job)
