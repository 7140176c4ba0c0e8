"""Real OpenAI-compatible servers on loopback for the remote-engine tests: llama-cpp-python's own
server (written by others, its `server` extra) and Hearth's `serve`, each a subprocess whose
stderr is read line by line, so tests wait for events (a "running on" line), never for time."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE_S = 240  # a bound for start-up on a slow machine, never a sleep
KEY = "remote-test-key-51c"


class LoopbackServer:
    """A server subprocess; `url` is its base URL once its start-up line was read."""

    url: str
    port: int
    model: str  # the model id the server lists
    key: str | None

    def __init__(self, command: list[str], ready: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready_line = self.wait_line(ready)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, needle: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=LINE_S)
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r}; got: {self.seen[-20:]}") from None
            if line is None:
                raise AssertionError(f"the server ended without {needle!r}: {self.seen[-20:]}")
            self.seen.append(line)
            if needle in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LlamaCppServer(LoopbackServer):
    """`python -m llama_cpp.server` with the test model (through llama_cpp_server_main, which
    keeps it off this build's AMX kernels). The Gemma base model has no chat template, so the
    server is given its built-in Gemma chat format."""

    def __init__(self, model: Path, *, key: str | None = KEY, alias: str = "gemma-remote",
                 env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "tests.e2e.llama_cpp_server_main", "--model", str(model),
                   "--host", "127.0.0.1", "--port", "0", "--chat_format", "gemma",
                   "--model_alias", alias, "--n_ctx", "4096", "--verbose", "False"]
        if key:
            command += ["--api_key", key]
        super().__init__(command, "Uvicorn running on", env)
        self.url = self.ready_line.split("running on ")[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.model = alias
        self.key = key


class HearthServer(LoopbackServer):
    """`python main.py serve` with the test model, its key from the environment."""

    def __init__(self, data_dir: Path, model: Path, key: str = KEY) -> None:
        command = [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), "serve",
                   "--port", "0", "--model", str(model)]
        super().__init__(command, "hearth: serving ", {"HEARTH_API_KEY": key})
        line = self.ready_line
        self.url = line.split(" at ")[1].split("/v1")[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.model = line.split("serving ")[1].split(" at ")[0]
        self.key = key


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed: a refused connection)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
