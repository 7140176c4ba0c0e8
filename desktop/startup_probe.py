"""HEARTH_STARTUP_PROBE=1: the app reports when its window is up and its idle memory, then
quits (bench/ui.py bench_startup launches the app this way and reads the line).

Its own module, importing nothing of Hearth: app.py imports it, and bench/ui.py imports app.py,
so keeping it in bench/ui.py made an import circle.
"""

from __future__ import annotations

import json
import time
from typing import Any


def startup_probe(window: Any) -> None:
    """Inside the app (HEARTH_STARTUP_PROBE=1): report when the window is up, then quit."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def shown() -> None:
        shown_at = time.time()

        def idle() -> None:
            import psutil

            rss = psutil.Process().memory_info().rss / 1e6
            print(json.dumps({"shown_at": shown_at, "idle_rss_mb": rss}), flush=True)
            QApplication.quit()

        QTimer.singleShot(2000, idle)  # idle memory, after the event loop settles

    QTimer.singleShot(0, shown)  # runs once the event loop is up and the window painted
