"""The one engine, shared by many API clients: jobs run one at a time, first come first served.

The engine worker generates one reply at a time; two requests interleaved on it would corrupt
each other's KV cache. So every use of the engine (generate, embed) becomes a job on one
thread that takes jobs in arrival order (FIFO, so no client starves). A job can be cancelled
from any thread: before it starts it is skipped, while it runs its generation is cancelled
between two tokens (the worker checks between tokens), so a client that disconnects frees the
engine at once for the next one.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from desktop.core.engine.client import EngineClient, Generation
from desktop.core.errors import HearthError

PieceCallback = Callable[[tuple[str, str]], None]  # (reasoning, text)
BusyCallback = Callable[[bool, str], None]


class Cancelled(HearthError):
    """The job was cancelled (its client went away) before it produced a result."""


@dataclass
class Job:
    label: str
    work: Callable[[Job], Any]
    future: Future[Any] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    generation: Generation | None = None
    cancel_reason: str = ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop this job from any thread (idempotent)."""
        if not self.cancel_reason:
            self.cancel_reason = reason
        self.cancelled.set()
        generation = self.generation
        if generation is not None:
            generation.cancel()

    def attach(self, generation: Generation) -> None:
        # Set before the check: a cancel() racing with us sees the generation or we see its flag.
        self.generation = generation
        if self.cancelled.is_set():
            generation.cancel()


class EngineQueue:
    """Runs engine jobs in order on one thread. `on_busy(active, label)` lets a window show
    when it is serving a request; `log` receives one line per finished generation."""

    def __init__(self, engine: EngineClient, *, on_busy: BusyCallback | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.on_busy = on_busy
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.current: Job | None = None  # the job the engine works on now
        self.waiting = 0  # jobs submitted and not yet started (for status displays)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="engine-queue")
            self._thread.start()

    def stop(self) -> None:
        """Cancel the running job and the waiting ones, end the thread."""
        if self._thread is None:
            return
        self._stopping = True
        current = self.current
        if current is not None:
            current.cancel("the server is stopping")
        self._jobs.put(None)
        self._thread.join()
        self._thread = None
        self._stopping = False

    def submit(self, label: str, work: Callable[[Job], Any]) -> Job:
        job = Job(label, work)
        ahead = self.waiting + (self.current is not None)
        if ahead:
            self.log(f"hearth serve: {label}: queued behind {ahead} request(s)")
        self.waiting += 1
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            self.waiting -= 1
            if self._stopping:
                job.cancel("the server is stopping")
            if job.cancelled.is_set():
                job.future.set_exception(
                    Cancelled(f"The request was cancelled: {job.cancel_reason}."))
                self.log(f"hearth serve: {job.label}: dropped before it started "
                         f"({job.cancel_reason})")
                continue
            self.current = job
            if self.on_busy is not None:
                self.on_busy(True, job.label)
            try:
                job.future.set_result(job.work(job))
            except BaseException as exc:  # delivered to the request that waits for it
                job.future.set_exception(exc)
            finally:
                self.current = None
                if self.on_busy is not None:
                    self.on_busy(False, job.label)

    # --- the two kinds of engine work ---------------------------------------------------
    def generate(self, label: str, parts: list[dict[str, Any]], params: dict[str, Any],
                 on_piece: PieceCallback | None = None) -> Job:
        """Queue a generation; the job's result is the worker's done event plus "text" and
        "reasoning" (a reasoning model's thinking, apart)."""

        def work(job: Job) -> dict[str, Any]:
            generation = self.engine.generate(parts, params)
            job.attach(generation)
            for piece in generation.pieces():
                if on_piece is not None and (piece[0] or piece[1]):
                    on_piece(piece)
            result = dict(generation.result or {})
            result["text"] = "".join(generation.text)
            result["reasoning"] = "".join(generation.reasoning)
            reason = result.get("stop_reason")
            why = f" ({job.cancel_reason})" if reason == "cancelled" and job.cancel_reason else ""
            self.log(f"hearth serve: {label}: {result.get('completion_tokens')} tokens "
                     f"({float(result.get('tokens_per_s') or 0):.1f}/s), stop={reason}{why}, "
                     f"{result.get('cached_tokens')} of {result.get('prompt_tokens')} prompt "
                     "tokens from the cache")
            return result

        return self.submit(label, work)

    def embed(self, label: str, texts: list[str],
              prepare: Callable[[], None] | None = None) -> Job:
        """Queue an embedding request; `prepare` loads the embedding model if needed (on the
        queue's thread, so a load never overlaps a generation)."""

        def work(job: Job) -> list[list[float]]:
            if prepare is not None:
                prepare()
            return self.engine.embed(texts)

        return self.submit(label, work)
