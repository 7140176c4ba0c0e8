"""The app's one document indexer: jobs run one at a time on its own thread for the app's
whole life, and anyone (the Documents window, a chat with dropped files, the folder watcher)
submits jobs and observes them through callbacks. Windows come and go; the indexing goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop.core.documents.index import DocumentIndex, Embedder, IndexLimits, IndexState
from desktop.core.errors import error_text

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class _ObservedState(IndexState):
    """An IndexState that tells its job each time a file is finished, so a window can show
    the file's row as soon as it is in the index, not when the whole run ends."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "files_done":
            notify = self.__dict__.get("_notify")
            if notify is not None:
                notify()


@dataclass
class IndexJob:
    collection: int
    paths: list[str] | None  # None: re-index the collection's remembered paths
    reason: str = "user"  # user | watch | chat
    state: IndexState = field(default_factory=_ObservedState)
    status: str = QUEUED
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def error_text(self) -> str:
        return error_text(self.error) if self.error is not None else ""


# kind is "queued", "started", "progress" (a file finished), "finished" or "failed".
IndexListener = Callable[[str, IndexJob], None]
EmbedderSource = Callable[[], tuple[Embedder | None, str | None]]


class Indexer:
    def __init__(self, documents: DocumentIndex, embedder: EmbedderSource,
                 limits: Callable[[], IndexLimits]) -> None:
        self.documents = documents
        self._embedder = embedder
        self._limits = limits
        self.jobs: list[IndexJob] = []  # waiting and running, oldest first
        self.current: IndexJob | None = None
        self._listeners: list[IndexListener] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: IndexListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def busy_with(self, collection: int) -> bool:
        return any(j.collection == collection for j in self.jobs)

    def submit(self, collection: int, paths: list[str] | None = None,
               reason: str = "user") -> IndexJob:
        """Queue indexing `paths` (None: re-read the collection's folders) into `collection`.
        An identical job already waiting is returned instead of queued twice (a folder
        watcher sees bursts of changes)."""
        with self._wake:
            for job in self.jobs:
                if job.status == QUEUED and job.collection == collection and job.paths == paths:
                    return job
            job = IndexJob(collection, list(paths) if paths is not None else None, reason)
            job.state.__dict__["_notify"] = lambda: self._emit("progress", job)
            self.jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="indexer")
                self._thread.start()
            self._wake.notify()
        self._emit("queued", job)
        return job

    def close(self) -> None:
        """App shutdown: the running job stops after its current file (each file is its own
        transaction, so the index stays whole and a later run resumes)."""
        with self._wake:
            self._closed = True
            for job in self.jobs:
                job.state.cancel()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _emit(self, kind: str, job: IndexJob) -> None:
        for listener in list(self._listeners):
            listener(kind, job)

    def _next(self) -> IndexJob | None:
        with self._wake:
            while not self._closed:
                if self.jobs:
                    self.current = self.jobs[0]
                    self.current.status = RUNNING
                    return self.current
                self._wake.wait()
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            job.state.started = time.monotonic()  # rates count from now, not from queueing
            self._emit("started", job)
            try:
                embedder, model_id = self._embedder()
                options: dict[str, Any] = {"embedder": embedder, "embed_model": model_id,
                                           "limits": self._limits(), "state": job.state}
                if job.paths is None:
                    self.documents.reindex(job.collection, **options)
                else:
                    self.documents.add_paths(job.collection, job.paths, **options)
                job.status = DONE
            except Exception as exc:  # noqa: BLE001 - every failure is shown on the job
                job.status, job.error = FAILED, exc
            with self._wake:
                self.jobs.remove(job)
                self.current = None
            job.done.set()
            self._emit("finished" if job.status == DONE else "failed", job)
