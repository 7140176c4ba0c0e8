"""Several downloads queued, run one after another on a worker thread, then added to the library."""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from desktop.core.errors import error_text
from desktop.core.models import hub
from desktop.core.models.download import (
    AccessDenied,
    DownloadError,
    DownloadState,
    DownloadStopped,
    download_file,
    part_path,
)
from desktop.core.models.library import ModelLibrary
from desktop.core.models.quant import ModelFile

Listener = Callable[["DownloadJob"], None]


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


def check_network(kept: int = 0) -> None:
    """Fail at once, in words, when the Hub's host cannot be reached at all: otherwise the
    downloader retries a dead connection with backoff for about 30 s while showing 0 MB/s."""
    if any(os.environ.get(name) for name in hub.PROXY_VARIABLES):
        return  # only the proxy knows; let the download try through it
    parts = urllib.parse.urlsplit(hub.endpoint())
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    keep = (f" The {kept / 1e6:.0f} MB already downloaded are kept." if kept else "")
    try:
        socket.create_connection((host, port), timeout=10).close()
    except socket.gaierror as exc:
        raise DownloadError(f"No network: {host} cannot be looked up, so nothing can be "
                            f"downloaded.{keep} Press Resume when you are online again.",
                            details=repr(exc)) from exc
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
            what = f"No network: {host} cannot be reached."
        elif isinstance(exc, ConnectionRefusedError):
            what = f"No server answers at {host}:{port} (the connection was refused)."
        elif isinstance(exc, TimeoutError):
            what = f"No network: {host} does not answer."
        else:
            what = f"No network: {host} cannot be reached."
        raise DownloadError(f"{what}{keep} Press Resume when you are online again.",
                            details=repr(exc)) from exc


def run_job(job: DownloadJob, models_dir: Path, library: ModelLibrary | None,
            token: str | None, **options: object) -> Path:
    """Download every file of a model (split parts too), verify each, register the first."""
    job.state.reset_controls()
    job.state.label = job.model.name
    job.state.speed = 0.0  # a speed from before a pause or a restart is not this one
    total = job.model.size
    job.state.total = total  # the bar shows the whole model's progress from the first byte
    done_before = 0
    first: Path | None = None
    for filename in job.model.files:
        dest = target_path(models_dir, job.repo, filename)
        file_state = DownloadState(label=filename)
        file_state._pause, file_state._cancel = job.state._pause, job.state._cancel

        def mirror(fs: DownloadState = file_state, base: int = done_before) -> None:
            # A finished part is not a finished job: "done" is set once the library has it.
            status = "verifying" if fs.status == "done" else fs.status
            job.state.done, job.state.speed, job.state.status = base + fs.done, fs.speed, status

        watcher = _Mirror(mirror)
        watcher.start()
        try:
            size = job.model.sizes.get(filename)
            if not dest.is_file():
                check_network(job.state.done)
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
        if job.model.mmproj:  # the projector downloaded with it is this model's
            from desktop.core.models.vision_pairs import pair_in_library

            pair_in_library(library, first, target_path(models_dir, job.repo, job.model.mmproj))
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


PENDING = ("queued", "downloading", "verifying", "paused", "failed")


class DownloadQueue:
    """Downloads run one at a time on a worker thread. With a `store` file, unfinished jobs
    are written down and come back after a restart as paused (their .part files are kept),
    so closing the app mid-download loses nothing and starts no network call by itself.

    One queue lives as long as the app (AppContext.downloads); windows come and go and
    `subscribe` to hear of every change, on the download thread or the caller's."""

    def __init__(self, models_dir: Path, library: ModelLibrary,
                 token: Callable[[], str | None] = lambda: None,
                 on_change: Listener | None = None,
                 store: Path | None = None) -> None:
        self.models_dir = models_dir
        self.library = library
        self.token = token
        self._listeners: list[Listener] = [on_change] if on_change else []
        self.store = store
        self.jobs: list[DownloadJob] = []
        self._wake = threading.Condition()
        self._closed = False
        self._restore()
        self._thread = threading.Thread(target=self._run, daemon=True, name="downloads")
        self._thread.start()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(job)` after every change; returns the function that stops it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def unfinished(self) -> list[DownloadJob]:
        """Jobs still to finish: waiting, running, paused (also those restored from the last
        run) or failed. What "Models… (paused downloads)" is about."""
        return [j for j in self.jobs if j.state.status in PENDING]

    def active(self) -> bool:
        return any(j.state.status in ("queued", "downloading", "verifying") for j in self.jobs)

    def close(self) -> None:
        """App shutdown: a running download pauses (its bytes and its entry are kept)."""
        with self._wake:
            self._closed = True
            for job in self.jobs:
                if job.state.status in ("downloading", "verifying"):
                    job.state.pause()
            self._wake.notify_all()
        self._thread.join(timeout=10)  # a pause lands within one chunk; then the list is saved

    def add(self, repo: str, model: ModelFile) -> DownloadJob:
        with self._wake:
            for job in self.jobs:
                if job.key == f"{repo}/{model.name}" and job.state.status in PENDING:
                    if job.state.status in ("paused", "failed"):
                        job.state.status, job.state.error = "queued", ""
                        job.state.needs_token = False
                        self._wake.notify()
                    break
            else:
                job = DownloadJob(repo, model)
                self.jobs.append(job)
                self._wake.notify()
        self._changed(job)
        return job

    def resume(self, job: DownloadJob) -> None:
        with self._wake:
            job.state.status, job.state.error, job.state.needs_token = "queued", "", False
            self._wake.notify()
        self._changed(job)

    def pause(self, job: DownloadJob) -> None:
        with self._wake:
            if job.state.status in ("downloading", "verifying"):
                job.state.pause()  # the worker thread stops at the next chunk
                return
            if job.state.status != "queued":
                return
            job.state.status = "paused"
        self._changed(job)

    def cancel(self, job: DownloadJob) -> None:
        """Stop a running download, or drop a waiting/paused/failed one, and delete its .part."""
        with self._wake:
            running = job.state.status in ("downloading", "verifying")
            if running:
                job.state.cancel()  # the worker thread stops it and cleans up
            elif job.state.status in PENDING:
                job.state.status = "cancelled"
        if not running:
            self._remove_parts(job)
            self._changed(job)

    def _remove_parts(self, job: DownloadJob) -> None:
        for filename in job.model.files:
            part_path(target_path(self.models_dir, job.repo, filename)).unlink(missing_ok=True)

    def _changed(self, job: DownloadJob) -> None:
        self._save()
        for listener in list(self._listeners):
            listener(job)

    def _save(self) -> None:
        if self.store is None:
            return
        with self._wake:  # one writer at a time: the GUI thread and the worker both save
            pending = [{"repo": j.repo, "model": asdict(j.model)}
                       for j in self.jobs if j.state.status in PENDING]
            try:
                self.store.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.store.with_suffix(".tmp")
                tmp.write_text(json.dumps(pending, indent=1), encoding="utf-8")
                os.replace(tmp, self.store)
            except OSError:
                pass  # a full or read-only disk must not break the download itself

    def _restore(self) -> None:
        if self.store is None:
            return
        try:
            saved = json.loads(self.store.read_text(encoding="utf-8"))
            restored = [DownloadJob(item["repo"], ModelFile(**item["model"])) for item in saved]
        except (OSError, ValueError, TypeError, KeyError):
            return  # no list yet, or an unreadable one: start empty
        for job in restored:
            done = 0
            for filename in job.model.files:
                dest = target_path(self.models_dir, job.repo, filename)
                part = part_path(dest)
                done += dest.stat().st_size if dest.is_file() else (
                    part.stat().st_size if part.is_file() else 0)
            job.state.label, job.state.total, job.state.done = job.model.name, job.model.size, done
            job.state.status = "paused"
            self.jobs.append(job)

    def _next(self) -> DownloadJob | None:
        with self._wake:
            while not self._closed:
                for job in self.jobs:
                    if job.state.status == "queued":
                        job.state.status = "downloading"
                        return job
                self._wake.wait()
            return None

    def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            self._changed(job)
            try:
                run_job(job, self.models_dir, self.library, self.token())
            except DownloadStopped as exc:
                cancelled = "cancelled" in exc.message
                if cancelled:
                    self._remove_parts(job)  # before the status says so: "cancelled" is final
                job.state.status = "cancelled" if cancelled else "paused"
            except Exception as exc:  # noqa: BLE001 - every failure is shown on the job
                job.state.status = "failed"
                job.state.error = error_text(exc)
                job.state.needs_token = isinstance(exc, AccessDenied)
            self._changed(job)
