"""The engine worker process: reads JSON-line requests on stdin, answers events on stdout.

fd 1 and fd 2 are pointed at a log file and the protocol uses a private duplicate of the
original stdout, so llama.cpp's native prints can never corrupt the stream, and the log's
tail explains a crash to the user.
"""

from __future__ import annotations

import argparse
import functools
import os
import queue
import sys
import threading
import traceback
from typing import IO, Any

from desktop.core.engine import protocol
from desktop.core.errors import HearthError

LOG_LIMIT = 5 * 1024 * 1024


class Channel:
    """Writes events on the private protocol fd; thread-safe so the reader can answer too."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, request_id: int, event: str, **fields: Any) -> None:
        data = protocol.encode({"id": request_id, "event": event, **fields})
        with self.lock:
            self.stream.write(data)
            self.stream.flush()


def _redirect_output(log_path: str) -> IO[bytes]:
    protocol_fd = os.dup(1)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    if os.path.exists(log_path) and os.path.getsize(log_path) > LOG_LIMIT:
        flags |= os.O_TRUNC  # keep the log small; only its tail is ever shown
    log_fd = os.open(log_path, flags, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = sys.stderr = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    return os.fdopen(protocol_fd, "wb", buffering=0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hearth engine-worker")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    channel = Channel(_redirect_output(args.log))
    print(f"[worker] started pid={os.getpid()}", flush=True)

    from desktop.engine_worker.runner import IDLE_SAVE_S, Runner

    runner = Runner()
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read_requests() -> None:
        # Cancels are handled here, at once, so a running generation sees them between tokens.
        for line in sys.stdin.buffer:
            try:
                message = protocol.decode(line)
            except ValueError:
                continue
            if message.get("op") == "cancel":
                runner.cancel(int(message.get("target", -1)))
                continue
            requests.put(message)
        runner.cancel_current()  # stdin closed: the client is gone, stop at the next token
        requests.put(None)

    threading.Thread(target=read_requests, daemon=True, name="requests").start()

    while True:
        try:
            message = requests.get(timeout=IDLE_SAVE_S)
        except queue.Empty:
            runner.save_state()  # idle: keep the active chat's state in case we are killed
            continue
        if message is None or message.get("op") == "shutdown":
            break
        request_id = int(message.get("id", -1))
        print(f"[worker] {message.get('op')} id={request_id}", flush=True)
        try:
            runner.handle(message, functools.partial(channel.send, request_id))
        except HearthError as exc:
            channel.send(request_id, "error", kind=type(exc).__name__, message=exc.message,
                         details=exc.details)
        except Exception as exc:  # a bug or a llama_cpp error: report, keep serving
            print(traceback.format_exc(), flush=True)
            channel.send(request_id, "error", kind=type(exc).__name__,
                         message=f"The model engine failed: {exc}",
                         details=traceback.format_exc())
    runner.close()
    print("[worker] exiting", flush=True)
    return 0
