"""Client side of the inference worker: starts it, talks JSON lines, survives its death.

The worker is a separate process so a segfault, GGML_ASSERT or OOM in llama.cpp kills only
it. Here such a death becomes EngineCrashed with the tail of the worker's log, and the next
request starts a fresh worker (reloading the last model) on its own.

One client is shared by threads (the window loads a model while a reply is sent; document
search embeds beside a chat), so starting the worker and loading models happen under one
lock, and request ids come from one counter under a lock: two threads that found no worker
used to start two, and two requests with one id got each other's answers.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.engine import protocol
from desktop.core.engine.protocol import FLASH_MODES
from desktop.core.errors import EngineCrashed, EngineError, HearthError, ModelFileError

# A worker that ignores a cancel this long is killed and respawned. A worker decodes a batch
# between two checks of the cancel flag (a drafted batch, or a prompt batch under load), which
# took over 3 s on a loaded 2-core machine: killing it then cost a model reload for nothing.
CANCEL_GRACE_S = 8.0
# How often a cancelled request still queued behind another checks whether the worker reached
# it. The grace used to start at the cancel: on a loaded machine the request before it took
# longer than that, and the worker was killed just as it reached the cancelled one.
REACH_POLL_S = 0.25
CRASH_MESSAGE = "The model stopped unexpectedly."


@dataclass
class LoadOptions:
    path: str
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_batch: int = 512
    embedding: bool = False
    state_dir: str | None = None  # per-conversation KV states on disk (None: RAM only)
    state_ram_mb: int = 1024
    state_disk_mb: int = 2048  # saved chat states on disk, least recently used evicted
    mmproj: str | None = None  # a vision model's projector, loaded beside it (libmtmd)
    # A draft model for speculative decoding (core/models/draft_pairing.py chooses it); the
    # worker checks its vocabulary and loads without it, with a note, when it cannot be used.
    draft_path: str | None = None
    # Flash attention: "auto", "on" or "off" (a model's defaults). "auto" is llama.cpp's own
    # choice, except for heads 64 wide or narrower with the KV cache on the CPU, where the
    # worker times both kernels on the machine once (engine_worker flash_choice.py).
    flash_attn: str = "auto"
    # Where the worker keeps what it measured on this machine (engine_worker flash_choice.py:
    # Automatic flash attention for narrow heads on a CPU). None: measured per worker process.
    tuning_file: str | None = None

    def request(self) -> dict[str, Any]:
        return dict(self.__dict__)


def flash_mode(own: dict[str, Any]) -> str:
    """A model's flash attention mode from its own settings (key `flash_attn`); anything
    unknown (a hand-edited file) is "auto"."""
    mode = own.get("flash_attn")
    return mode if mode in FLASH_MODES else "auto"


@dataclass
class Generation:
    """A running generate request: iterate for text pieces; `result` holds the done event.

    With a `reasoning_format` in the params, the worker sends a reasoning model's thinking
    apart: iterating gives the answer only, `pieces()` gives (reasoning, text) pairs."""

    client: EngineClient
    request_id: int
    events: queue.Queue[dict[str, Any]]
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    # Hears the worker's `progress` events (reading a long prompt: stage "prompt", done and
    # total tokens) before the first token; set it before iterating.
    on_progress: Callable[[dict[str, Any]], None] | None = None
    _cancelled: bool = False
    # When the worker's grace to honour the cancel started: once it has reached this request
    # (a request queued behind another is dropped when reached, however long that takes).
    _cancel_at: float | None = None

    def cancel(self) -> None:
        if not self._cancelled and self.result is None:
            self._cancelled = True
            self.client._send({"op": "cancel", "id": self.client._next_id(),
                               "target": self.request_id})

    def __iter__(self) -> Iterator[str]:
        for _, text in self.pieces():
            if text:
                yield text

    def pieces(self) -> Iterator[tuple[str, str]]:
        while self.result is None:
            timeout = None
            if self._cancelled and self._cancel_at is None:
                if self.client._reached(self.request_id):
                    self._cancel_at = time.monotonic()
                else:  # queued behind an earlier request (an API reply, say): look again
                    timeout = REACH_POLL_S
            if self._cancel_at is not None:
                timeout = max(0.0, self._cancel_at + CANCEL_GRACE_S - time.monotonic())
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                if self._cancel_at is None:
                    continue  # not reached yet: its grace has not started
                # The worker is stuck in native code: kill it; the partial text stays ours.
                self.client.kill()
                self.result = {"event": "done", "stop_reason": "cancelled", "killed": True,
                               "completion_tokens": None}
                break
            kind = event["event"]
            if kind == "tokens":
                reasoning = event.get("reasoning") or ""
                if reasoning:
                    self.reasoning.append(reasoning)
                self.text.append(event["text"])
                yield reasoning, event["text"]
            elif kind == "done":
                self.result = event
            elif kind == "progress":
                if self.on_progress is not None:
                    self.on_progress(event)
            elif kind == "error":
                self.client._forget(self.request_id)
                raise self.client._error_from(event)
        self.client._forget(self.request_id)

    def wait(self) -> dict[str, Any]:
        for _ in self:
            pass
        assert self.result is not None
        return self.result


class EngineClient:
    def __init__(self, log_path: Path, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        from desktop.paths import worker_command

        self.log_path = Path(log_path)
        self.command = command or worker_command()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.loaded: dict[str, Any] | None = None  # the `loaded` event of the current model
        self._load_options: LoadOptions | None = None
        self._embed_options: LoadOptions | None = None  # the embedding model, loaded beside it
        self._write_lock = threading.Lock()
        # Re-entrant: starting a worker loads the current models through _call, which
        # checks the worker again.
        self._lifecycle_lock = threading.RLock()
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._pending: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._pending_lock = threading.Lock()
        # Requests sent and not yet answered in full, as the event reader sees them: the worker
        # takes requests in order, so it has reached a request once no earlier one is open.
        self._unanswered: set[int] = set()

    # --- process management -----------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ensure_started(self) -> None:
        with self._lifecycle_lock:
            if not self.alive:
                self._start()

    def _start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = subprocess.Popen(
            [*self.command, "--log", str(self.log_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, bufsize=0,
            # A windowed app on Windows must not flash a console for its worker.
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        threading.Thread(target=self._read_events, args=(self.process,), daemon=True,
                         name="engine-events").start()
        self.loaded = None
        if self._load_options is not None:
            # A fresh worker after a crash: bring back the model the user had.
            self.loaded = self._call({"op": "load", **self._load_options.request()})
        if self._embed_options is not None:
            self._call({"op": "load", **self._embed_options.request()})

    def _read_events(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = protocol.decode(line)
            except ValueError:
                continue
            with self._pending_lock:
                target = self._pending.get(int(event.get("id", -1)))
                if event.get("event") not in ("tokens", "progress"):
                    self._unanswered.discard(int(event.get("id", -1)))
            if target is not None:
                target.put(event)
        process.wait()
        crash = {"event": "error", "kind": "crashed", "message": CRASH_MESSAGE,
                 "returncode": process.returncode}
        with self._pending_lock:
            waiting = list(self._pending.values())
            self._pending.clear()
            self._unanswered.clear()
        for target in waiting:
            target.put(crash)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def shutdown(self, timeout: float = 20.0) -> None:
        # The worker saves the active chat's KV state as it exits (a few hundred MB at most):
        # give it time to, before falling back to a kill.
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            self._send({"op": "shutdown", "id": self._next_id()})
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired, EngineError):
            process.kill()
            process.wait()

    # --- requests -------------------------------------------------------------------
    def _next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        try:
            with self._write_lock:
                self.process.stdin.write(protocol.encode(message))
        except (BrokenPipeError, OSError) as exc:
            raise EngineCrashed(CRASH_MESSAGE, details=self.log_tail()) from exc

    def _open(self, message: dict[str, Any]) -> tuple[int, queue.Queue[dict[str, Any]]]:
        self._ensure_started()
        request_id = self._next_id()
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._pending_lock:
            self._pending[request_id] = events
            self._unanswered.add(request_id)
        self._send({**message, "id": request_id})
        return request_id, events

    def _reached(self, request_id: int) -> bool:
        """Whether the worker has finished every request sent before this one."""
        with self._pending_lock:
            return not any(other < request_id for other in self._unanswered)

    def _forget(self, request_id: int) -> None:
        with self._pending_lock:
            self._pending.pop(request_id, None)

    def _error_from(self, event: dict[str, Any]) -> HearthError:
        if event.get("kind") == "crashed":
            self.loaded = None
            code = event.get("returncode")
            how = (f"killed by signal {-code}" if isinstance(code, int) and code < 0
                   else f"exit code {code}")
            return EngineCrashed(CRASH_MESSAGE,
                                 details=f"The engine worker ended ({how}). Its log ends with:\n"
                                 + self.log_tail())
        # The worker names the error class; model-file problems stay ModelFileError for callers.
        kind = ModelFileError if event.get("kind") == "ModelFileError" else EngineError
        return kind(event.get("message", "The model reported an error."),
                    details=event.get("details", ""))

    def _call(self, message: dict[str, Any],
              on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        request_id, events = self._open(message)
        try:
            event = events.get()
            while event["event"] == "progress":  # a long load reports how far it is
                if on_progress is not None:
                    on_progress(event)
                event = events.get()
        finally:
            self._forget(request_id)
        if event["event"] == "error":
            raise self._error_from(event)
        return event

    def load(self, options: LoadOptions,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Load a chat model, or with `embedding=True` the embedding model beside it (each
        replaces the previous one of its kind); returns the worker's `loaded` event.

        Serialised with worker start-up: a load and a send that overlap share one worker,
        and a send waits until the load it overlaps has finished."""
        with self._lifecycle_lock:
            if not self.alive:
                # A fresh worker starts for this load: restoring the model it replaces first
                # would only cost time.
                if options.embedding:
                    self._embed_options = None
                else:
                    self._load_options = None
            try:
                event = self._call({"op": "load", **options.request()}, on_progress)
            except BaseException:
                # A failed load must not be retried after a respawn.
                if options.embedding:
                    self._embed_options = None
                else:
                    self._load_options = None
                    self.loaded = None
                raise
            if options.embedding:
                self._embed_options = options
            else:
                self._load_options = options
                self.loaded = event
            return event

    @property
    def embedding_model(self) -> str | None:
        return self._embed_options.path if self._embed_options else None

    def unload(self) -> None:
        with self._lifecycle_lock:
            self._load_options = None
            self._embed_options = None
            self.loaded = None
            if self.alive:
                self._call({"op": "unload"})

    def generate(self, parts: list[dict[str, Any]], params: dict[str, Any]) -> Generation:
        if self._load_options is None:
            raise EngineError("No model is loaded. Choose a model first.")
        request_id, events = self._open({"op": "generate", "parts": parts, "params": params})
        return Generation(self, request_id, events)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return list(self._call({"op": "count", "texts": texts})["counts"])

    def count_image_tokens(self, paths: list[str]) -> list[int]:
        """KV positions each image takes with the loaded projector (markers included)."""
        if not paths:
            return []
        return list(self._call({"op": "count", "texts": [], "images": paths})["images"])

    def embed(self, texts: list[str]) -> list[list[float]]:
        return list(self._call({"op": "embed", "texts": texts})["vectors"])
