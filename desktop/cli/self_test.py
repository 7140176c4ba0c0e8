"""`hearth gui --self-test`: proves an install (or a frozen bundle) works end to end.

Opens the real main window offscreen, starts the engine worker, loads a model, streams a
short reply through the window, reads the history back from a fresh database connection in
a temporary data dir, prints one line and exits 0 (or 1 with the reason).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_self_test(model: str | None, create_app: Callable[[], Any],
                  build_window: Callable[[Path], Any], timeout_s: float = 180.0) -> int:
    """`create_app` and `build_window` are desktop.app's (passed in: app.py calls this, and
    importing it back would be an import circle)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication

    from desktop.core.store.chats import ChatStore
    from desktop.core.store.db import Database

    started = time.perf_counter()
    app = create_app()
    with tempfile.TemporaryDirectory(prefix="hearth-self-test-") as tmp:
        data_dir = Path(tmp)
        window = build_window(data_dir)
        try:
            window.show()
            ctx = window.ctx
            if model:
                ctx.settings.set("last_model", str(Path(model).resolve()))
            else:
                ctx.ensure_starter()
            if not ctx.settings.get("last_model"):
                print("Hearth self-test FAILED: no model (pass --model PATH or install the "
                      "starter extra)")
                return 1
            ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"),
                                               "max_tokens": 8, "temperature": 0}
            window.send("Say hello.")
            deadline = time.monotonic() + timeout_s
            while window.generating and time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.01)
            QCoreApplication.processEvents()
            if window.generating:
                print("Hearth self-test FAILED: no reply within the time limit")
                return 1
            if window.error_box.isVisible():
                print(f"Hearth self-test FAILED: {window.error_label.text()}")
                return 1
            conversation_id = window.current_id
            db = Database(data_dir / "hearth.sqlite3")
            messages = ChatStore(db).messages(conversation_id)
            db.close()
            reply = messages[-1] if messages else None
            if reply is None or reply.role != "assistant" or not reply.completion_tokens:
                print("Hearth self-test FAILED: the reply was not stored")
                return 1
            from desktop.core.models.catalog import load_catalog

            catalog = load_catalog()  # shipped in resources/: proves the bundle carries them
            if not catalog:
                print("Hearth self-test FAILED: the recommended-models list is missing")
                return 1
            loaded = window.service.model
            print(f"Hearth self-test OK: window shown, worker started, model "
                  f"{loaded.info.name} ({loaded.info.quantization}) loaded, "
                  f"{reply.completion_tokens} tokens at {reply.tokens_per_s or 0:.1f} tok/s, "
                  f"history read back ({len(messages)} messages), "
                  f"{len(catalog)} recommended models listed, "
                  f"in {time.perf_counter() - started:.1f} s")
            return 0
        finally:
            window.close()
            window.ctx.close()
