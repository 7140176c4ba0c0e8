"""Run plain functions off the GUI thread and get their result back on it (Anki's QueryOp idea).

The function must not touch widgets; it gets its inputs as arguments and returns a value.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot


class _Relay(QObject):
    succeeded = Signal(object)
    failed = Signal(object)


class BackgroundTask:
    """Starts `fn(*args)` on a daemon thread; `on_done`/`on_error` run on the GUI thread."""

    running: set[BackgroundTask] = set()  # keep relays alive until they have delivered

    def __init__(self, fn: Callable[..., Any], *args: Any,
                 on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.relay = _Relay()
        self.fn, self.args = fn, args
        if on_done is not None:
            self.relay.succeeded.connect(on_done)
        if on_error is not None:
            self.relay.failed.connect(on_error)
        self.relay.succeeded.connect(self._finished)
        self.relay.failed.connect(self._finished)

    def start(self) -> BackgroundTask:
        BackgroundTask.running.add(self)
        threading.Thread(target=self._run, daemon=True, name="hearth-task").start()
        return self

    def _run(self) -> None:
        try:
            result = self.fn(*self.args)
        except BaseException as exc:  # delivered to the GUI, never lost in a thread
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.relay.failed.emit(exc)
        else:
            self.relay.succeeded.emit(result)

    @Slot(object)
    def _finished(self, _: Any) -> None:
        BackgroundTask.running.discard(self)


def run_in_background(fn: Callable[..., Any], *args: Any,
                      on_done: Callable[[Any], None] | None = None,
                      on_error: Callable[[BaseException], None] | None = None) -> BackgroundTask:
    return BackgroundTask(fn, *args, on_done=on_done, on_error=on_error).start()
