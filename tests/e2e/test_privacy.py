"""No network: start-up, chat and history open no socket other than loopback/local IPC.

An audit hook (sitecustomize on PYTHONPATH) records every socket connect, bind and DNS
lookup in the CLI/GUI process and in the engine worker it starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HOOK = r'''
import json, os, socket, sys

LOG = os.environ["HEARTH_NET_LOG"]
ALL = os.environ.get("HEARTH_NET_LOG_ALL")  # also loopback (host, port): where it went

def _local(host):
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")

def _hook(event, args):
    if event not in ("socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto"):
        return
    target = args[1] if event in ("socket.connect", "socket.bind", "socket.sendto") else args[0]
    if isinstance(target, (str, bytes)) and event != "socket.getaddrinfo":
        return  # AF_UNIX path: local IPC
    host = target[0] if isinstance(target, tuple) else target
    if ALL:
        where = [str(host), args[1]] if event == "socket.getaddrinfo" else [str(host), target[1]]
        with open(ALL, "a") as f:
            f.write(json.dumps({"event": event, "target": where}) + "\n")
    if not _local(host):
        with open(LOG, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "event": event, "target": repr(target)}) + "\n")

sys.addaudithook(_hook)
'''


def _attempts(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def audited_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "net.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    env["HEARTH_NET_LOG"] = str(log)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env, log


def _run(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "main.py"), *args], env=env, check=True,
                   capture_output=True, text=True, timeout=240)


def test_hook_catches_a_real_attempt(audited_env: tuple[dict[str, str], Path]) -> None:
    env, log = audited_env
    code = ("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=0.01)\n"
            "except OSError:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert "192.0.2.1" in log.read_text()  # the hook works, so silence below means something


def test_startup_chat_and_history_stay_offline(audited_env: tuple[dict[str, str], Path],
                                               data_dir: Path, gemma_path: Path) -> None:
    env, log = audited_env
    _run(env, "--data-dir", str(data_dir), "chat", "--model", str(gemma_path),
         "--max-tokens", "8", "Hello")
    _run(env, "--data-dir", str(data_dir), "history", "list")
    _run(env, "--data-dir", str(data_dir), "--self-test", "--model", str(gemma_path))
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert attempts == []


def test_a_configured_remote_server_is_the_only_address_contacted(
        audited_env: tuple[dict[str, str], Path], data_dir: Path, gemma_path: Path,
        tmp_path: Path) -> None:
    """With a remote server configured by the user (here llama-cpp-python's own server on
    loopback), the prompt goes there and nowhere else: every connection and lookup of the CLI
    process is to that address and port."""
    from tests.e2e.remote_servers import KEY, LlamaCppServer

    env, log = audited_env
    every = tmp_path / "all-connections.log"
    env = {**env, "HEARTH_NET_LOG_ALL": str(every), "REMOTE_KEY": KEY}
    server = LlamaCppServer(gemma_path)  # not audited: it is the remote machine
    try:
        _run(env, "--data-dir", str(data_dir), "models", "remote", "add", server.url,
             "--api-key-env", "REMOTE_KEY")
        _run(env, "--data-dir", str(data_dir), "chat", "--model", f"remote:{server.model}",
             "--api-key-env", "REMOTE_KEY", "--max-tokens", "8", "Hello")
    finally:
        server.stop()
    assert _attempts(log) == []
    contacted = {tuple(a["target"]) for a in _attempts(every)}  # type: ignore[arg-type]
    assert contacted == {("127.0.0.1", server.port)}
