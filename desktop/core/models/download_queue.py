"""Several downloads queued, run one after another on a worker thread, then added to the library."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop.core.errors import error_text
from desktop.core.models import hub
from desktop.core.models.download import (
    DownloadError,
    DownloadState,
    DownloadStopped,
    download_file,
)
from desktop.core.models.library import ModelLibrary
from desktop.core.models.quant import ModelFile


@dataclass
class DownloadJob:
    repo: str
    model: ModelFile
    state: DownloadState = field(default_factory=DownloadState)
    path: Path | None = None  # the first file, once everything is verified

    @property
    def key(self) -> str:
        return f"{self.repo}/{self.model.name}"


def target_path(models_dir: Path, repo: str, filename: str) -> Path:
    """<models>/<owner>/<repo>/<file>: plain files, no symlinked hub cache (DESIGN 5)."""
    path = (models_dir / repo / filename).resolve()
    if not path.is_relative_to(models_dir.resolve()):
        raise DownloadError(f"Refusing a file name that leaves the models folder: {filename}")
    return path


def run_job(job: DownloadJob, models_dir: Path, library: ModelLibrary | None,
            token: str | None, **options: object) -> Path:
    """Download every file of a model (split parts too), verify each, register the first."""
    job.state.reset_controls()
    job.state.label = job.model.name
    total = job.model.size
    done_before = 0
    first: Path | None = None
    for filename in job.model.files:
        dest = target_path(models_dir, job.repo, filename)
        file_state = DownloadState(label=filename)
        file_state._pause, file_state._cancel = job.state._pause, job.state._cancel

        def mirror(fs: DownloadState = file_state, base: int = done_before) -> None:
            job.state.done, job.state.speed, job.state.status = base + fs.done, fs.speed, fs.status

        watcher = _Mirror(mirror)
        watcher.start()
        try:
            size = job.model.sizes.get(filename)
            if not dest.is_file():
                download_file(hub.file_url(job.repo, filename, job.model.revision), dest, size=size,
                              sha256=job.model.sha256.get(filename), state=file_state,
                              token=token, **options)  # type: ignore[arg-type]
        finally:
            watcher.stop()
        done_before += dest.stat().st_size
        job.state.done, job.state.total = done_before, total
        first = first or dest
    assert first is not None
    if library is not None:
        library.add(first, source="hub")
    job.path = first
    job.state.status = "done"
    return first


class _Mirror:
    """Copies a part's progress into the job's state a few times a second."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.1):
            self.fn()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.fn()


class DownloadQueue:
    def __init__(self, models_dir: Path, library: ModelLibrary,
                 token: Callable[[], str | None] = lambda: None,
                 on_change: Callable[[DownloadJob], None] | None = None) -> None:
        self.models_dir = models_dir
        self.library = library
        self.token = token
        self.on_change = on_change or (lambda job: None)
        self.jobs: list[DownloadJob] = []
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="downloads")
        self._thread.start()

    def add(self, repo: str, model: ModelFile) -> DownloadJob:
        with self._wake:
            for job in self.jobs:
                if job.key == f"{repo}/{model.name}" and job.state.status in (
                        "queued", "downloading", "verifying"):
                    return job
            job = DownloadJob(repo, model)
            self.jobs.append(job)
            self._wake.notify()
        self.on_change(job)
        return job

    def resume(self, job: DownloadJob) -> None:
        with self._wake:
            job.state.status, job.state.error = "queued", ""
            self._wake.notify()
        self.on_change(job)

    def _next(self) -> DownloadJob:
        with self._wake:
            while True:
                for job in self.jobs:
                    if job.state.status == "queued":
                        return job
                self._wake.wait()

    def _run(self) -> None:
        while True:
            job = self._next()
            job.state.status = "downloading"
            self.on_change(job)
            try:
                run_job(job, self.models_dir, self.library, self.token())
            except DownloadStopped as exc:
                job.state.status = "cancelled" if "cancelled" in exc.message else "paused"
                if job.state.status == "cancelled":
                    for filename in job.model.files:
                        part = target_path(self.models_dir, job.repo, filename)
                        part.with_name(part.name + ".part").unlink(missing_ok=True)
            except Exception as exc:  # noqa: BLE001 - every failure is shown on the job
                job.state.status = "failed"
                job.state.error = error_text(exc)
            self.on_change(job)
