"""Bench parts that need Qt: streaming into a long conversation, and start-up."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

UI_STALL_TARGET_S = 0.050
UI_P95_TARGET_S = 0.016
STARTUP_TARGET_S = 1.5
IDLE_MEMORY_TARGET_MB = 250


def bench_ui(seconds: float = 5.0, tokens_per_s: float = 200.0,
             history_chars: int = 100_000) -> dict[str, Any]:
    """Stream synthetic tokens into a ChatView already holding `history_chars` of messages,
    and probe the main thread: a 5 ms timer whose late firings are the stalls a user feels."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication

    from desktop.app import create_app
    from desktop.core.store.chats import Message
    from desktop.ui.chat_view import ChatView

    app = create_app()
    view = ChatView()
    view.resize(900, 700)
    view.show()
    paragraph = ("Here is a paragraph with **bold**, `code` and a list:\n\n- one\n- two\n\n"
                 "```python\nprint('hello')\n```\n\n")
    messages: list[Any] = []
    total = 0
    while total < history_chars:
        role = "user" if len(messages) % 2 == 0 else "assistant"
        text = paragraph * 10
        messages.append(Message(len(messages) + 1, 1, role, text, "done", time.time()))
        total += len(text)
    view.set_messages(messages)
    app.processEvents()

    class Source(QObject):
        token = Signal(str)

    source = Source()
    source.token.connect(view.append)
    view.begin_stream(Message(0, 1, "assistant", "", "streaming", time.time()))
    stop = threading.Event()
    words = ("word ", "**bold** ", "`x` ", "\n\n", "- item\n", "code ")

    def produce() -> None:
        interval = 1.0 / tokens_per_s
        next_at = time.perf_counter()
        i = 0
        while not stop.is_set():
            source.token.emit(words[i % len(words)])
            i += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    gaps: list[float] = []
    last = [time.perf_counter()]

    def probe() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(probe)
    timer.start()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    stop.set()
    producer.join()
    timer.stop()
    view.end_stream(None)
    QApplication.processEvents()
    # A gap beyond the 5 ms period is time the main thread could not answer.
    stalls = [max(0.0, g - 0.005) for g in gaps[1:]]
    stalls.sort()
    return {
        "history_chars": total,
        "streamed_chars": len(view.streaming_text),
        "tokens_per_s": tokens_per_s,
        "max_stall_s": stalls[-1] if stalls else 0.0,
        "p95_stall_s": stalls[int(len(stalls) * 0.95)] if stalls else 0.0,
        "probes": len(stalls),
    }


def bench_startup(repeats: int = 3) -> dict[str, Any]:
    """Launch the real app `repeats` times (after one warm-up): time from process start until
    the window is shown and its event loop is free, and the GUI's idle memory."""
    runs = []
    for i in range(repeats + 1):
        with tempfile.TemporaryDirectory(prefix="hearth-startup-") as data:
            env = {**os.environ, "HEARTH_STARTUP_PROBE": "1",
                   "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
            started = time.time()
            out = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", data, "gui"],
                                 env=env, capture_output=True, text=True, timeout=120,
                                 cwd=Path(__file__).resolve().parent.parent)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("{")), None)
            if line is None:
                raise RuntimeError(f"start-up probe printed nothing: {out.stderr[-2000:]}")
            report = json.loads(line)
            report["shown_s"] = report["shown_at"] - started
            if i:  # the first launch warms the disk cache
                runs.append(report)
    return {
        "shown_s": statistics.median(r["shown_s"] for r in runs),
        "idle_rss_mb": statistics.median(r["idle_rss_mb"] for r in runs),
        "runs": len(runs),
    }
