"""The window's API server: the same server as `hearth serve`, as an app-level service.

It lives on the AppContext (`ctx.api`) for the app's whole life, is started and stopped from
the settings (`sync()`, off the GUI thread: binding a port and asking the keychain can wait),
and windows observe it through `subscribe` (the Qt bridge turns its events into signals).

It serves the model the window has loaded (`model_source`), and the window's chat replies
share its EngineQueue with API requests (`turn()`), so the one engine answers one generation
at a time, in arrival order, whoever asked.

The key is made once and kept in the OS keychain (keyring, off the GUI thread with the HF
token's timeout). Where no keychain answers (headless Linux), it is kept for this session
only, as the HF token is; HEARTH_API_KEY, as for `hearth serve`, gives a key that lasts.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from desktop import paths
from desktop.core.errors import HearthError

if TYPE_CHECKING:
    from desktop.core.chat.service import ModelState
    from desktop.core.context import AppContext
    from desktop.server.app import ApiServer
    from desktop.server.queue import EngineQueue, Job

KEY_ENV = "HEARTH_API_KEY"  # the same variable as `hearth serve`
KEY_USER = "api-server-key"  # the keychain entry, under the HF token's service name
WINDOW = "window: "  # label prefix of the window's own turns (they are not API requests)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

Listener = Callable[[str, "ApiStatus"], None]


@dataclass(frozen=True)
class ApiStatus:
    """What a window shows: whether it runs, where, and the request it serves now."""

    running: bool = False
    url: str = ""  # http://host:port (the port actually bound, also with port 0)
    host: str = ""
    serving: str = ""  # the label of the API request being generated, "" when none
    error: str | None = None  # why the last start failed (one sentence)


class EngineTurn:
    """A place in the engine queue for work that runs on its caller's thread (a window chat
    reply): `wait()` returns when the API requests queued before it are done, `release()`
    lets the next one go. Without a running server both return at once."""

    def __init__(self, queue: EngineQueue | None = None, label: str = "",
                 on_release: Callable[[EngineTurn], None] | None = None) -> None:
        self._granted = threading.Event()
        self._released = threading.Event()
        self._on_release = on_release
        self.job: Job | None = None
        if queue is None:
            self._granted.set()
            return

        def hold(_: Job) -> None:
            self._granted.set()
            self._released.wait()  # the engine is the caller's until it releases

        self.job = queue.submit(label, hold)
        # Also wakes the caller when the queue drops the turn unstarted (the server stopped):
        # with no queue left there is nobody to wait for.
        self.job.future.add_done_callback(lambda _: self._granted.set())

    def wait(self) -> None:
        self._granted.wait()

    def release(self) -> None:
        self._released.set()
        if self._on_release is not None:
            self._on_release(self)

    def __enter__(self) -> EngineTurn:
        self.wait()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()


class ApiService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        # The window's loaded model (set by the window): the API serves what the window uses.
        self.model_source: Callable[[], ModelState | None] | None = None
        self.key_source = ""  # "environment", "keychain" or "session" once the key is known
        self.log_lines: collections.deque[str] = collections.deque(maxlen=200)
        self._listeners: list[Listener] = []
        self._lifecycle = threading.RLock()  # start/stop/sync one at a time, in order
        self._turns_lock = threading.Lock()
        self._turns: set[EngineTurn] = set()
        self._key_lock = threading.Lock()
        self._key: str | None = None
        self._server: ApiServer | None = None
        self._queue: EngineQueue | None = None
        self._config: tuple[str, int, str] | None = None
        self._serving = ""
        self._error: str | None = None

    # --- observing ---------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """`listener(event, status)` on the service's threads: "started", "stopped",
        "failed", "serving" (an API request began generating), "idle" (it ended)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _publish(self, event: str) -> None:
        status = self.status
        for listener in list(self._listeners):
            listener(event, status)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def status(self) -> ApiStatus:
        server = self._server
        if server is None:
            return ApiStatus(error=self._error)
        return ApiStatus(True, server.url, server.host, self._serving)

    # --- the key -------------------------------------------------------------------------
    def key(self) -> str:
        """The key clients must send; made once. Blocks on the keychain for up to a few
        seconds: call it off the GUI thread."""
        from desktop.core.models.token import SERVICE, KeyringUnavailable, _call, _keyring

        with self._key_lock:
            if self._key:
                return self._key
            given = os.environ.get(KEY_ENV, "").strip()
            if given:
                self._key, self.key_source = given, "environment"
                return given
            try:
                stored = _call(lambda: _keyring().get_password(SERVICE, KEY_USER))
            except KeyringUnavailable:
                stored = None
            if stored:
                self._key, self.key_source = stored, "keychain"
                return stored
            from desktop.server.auth import generate_key

            key = generate_key()
            try:
                _call(lambda: _keyring().set_password(SERVICE, KEY_USER, key))
                self.key_source = "keychain"
            except KeyringUnavailable:
                self.key_source = "session"  # as the HF token's fallback: this session only
            self._key = key
            return key

    # --- starting and stopping -------------------------------------------------------------
    def wanted(self) -> tuple[str, int, str] | None:
        """(host, port, allowed origin) from the settings, or None when the switch is off."""
        s = self.ctx.settings
        if not s.get("api_server_enabled"):
            return None
        host = str(s.get("api_server_host") or DEFAULT_HOST).strip() or DEFAULT_HOST
        port = s.get("api_server_port")
        port = DEFAULT_PORT if port is None else int(port)
        return host, port, str(s.get("api_server_allow_origin") or "").strip()

    def sync(self) -> ApiStatus:
        """Make the server match the settings: start it, stop it, or restart it on a new
        address. A start that fails (a port in use) is published as "failed" with one
        sentence; the switch stays as the user set it."""
        with self._lifecycle:
            if self.ctx.closed:
                return self.status
            wanted = self.wanted()
            if self._server is not None and wanted != self._config:
                self._stop()
            if wanted is not None and self._server is None:
                try:
                    self._start(*wanted)
                except HearthError as exc:
                    self._error = exc.message
                    self._publish("failed")
            elif wanted is None:
                self._error = None
            return self.status

    def _start(self, host: str, port: int, origin: str) -> None:
        from desktop.server.app import ApiServer, bind
        from desktop.server.queue import EngineQueue
        from desktop.server.window_backend import WindowBackend

        if not 0 <= port <= 65535:
            raise HearthError(f"{port} is not a port number (0 to 65535): choose another in "
                              "Settings → API server.")
        key = self.key()
        try:
            sock = bind(host, port)
        except HearthError as exc:
            why = exc.__cause__
            reason = getattr(why, "strerror", None) or str(why or exc.message)
            raise HearthError(f"Hearth cannot serve the API on {host}:{port}: {reason}. Choose "
                              "another port in Settings → API server (or stop the program "
                              "using it).") from exc
        queue = EngineQueue(self.ctx.engine, on_busy=self._busy, log=self._log)
        backend = WindowBackend(queue, self.ctx, self._model)
        try:
            server = ApiServer(backend, host=host, port=port, key=key,
                               allow_origin=origin or None, sock=sock)
        except BaseException:
            sock.close()
            raise
        with self._turns_lock:
            self._server, self._queue = server, queue
        self._config = (host, port, origin)
        self._error = None
        server.start_in_thread()
        self._log(f"hearth serve: serving at {server.url}/v1 and {server.url}/api")
        self._publish("started")

    def _stop(self) -> None:
        server = self._server
        if server is None:
            return
        with self._turns_lock:
            # No new turn joins a queue that is about to stop (it would never be granted).
            self._server, self._queue = None, None
            turns = list(self._turns)
        for turn in turns:
            turn.release()  # a window reply in progress goes on, outside the stopped queue
        # The queue first: requests waiting or generating get their answer (cancelled) now,
        # instead of holding the server's graceful shutdown for seconds.
        server.backend.queue.stop()
        server.stop()  # closes the socket
        self._config = None
        self._serving = ""
        self._log("hearth serve: stopped")
        self._publish("stopped")

    def stop(self) -> None:
        with self._lifecycle:
            self._stop()

    # --- the engine, shared with the window --------------------------------------------------
    def turn(self, label: str) -> EngineTurn:
        """The window's place in the queue for one generation (see EngineTurn)."""
        with self._turns_lock:
            queue = self._queue
            if queue is None:
                return EngineTurn()
            turn = EngineTurn(queue, WINDOW + label, on_release=self._turn_done)
            self._turns.add(turn)
            return turn

    def _turn_done(self, turn: EngineTurn) -> None:
        with self._turns_lock:
            self._turns.discard(turn)

    def _model(self) -> ModelState | None:
        source = self.model_source
        return source() if source is not None else None

    def _busy(self, active: bool, label: str) -> None:
        if label.startswith(WINDOW):
            return  # the window's own reply: it shows that itself
        self._serving = label if active else ""
        self._publish("serving" if active else "idle")

    def _log(self, line: str) -> None:
        self.log_lines.append(line)
        try:
            with (paths.logs_dir(self.ctx.data_dir) / "api.log").open("a", encoding="utf-8") \
                    as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError:
            pass  # a log that cannot be written must not stop a request

    def close(self) -> None:
        self.stop()
        self._listeners.clear()
