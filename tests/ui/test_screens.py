"""`python main.py screenshots --out DIR` renders the main window at both sizes and themes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QColor, QImage

from desktop.ui import theme

REPO = Path(__file__).resolve().parent.parent.parent


def test_screenshots_command_renders_the_main_window(tmp_path: Path) -> None:
    out = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "screenshots", "--out",
                             str(out), "--only", "main"], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(p.name for p in out.glob("*.png"))
    expected = sorted(f"main-{screen}-{w}x{h}-{mode}.png" for screen in ("start", "chat")
                      for w, h in ((800, 600), (1600, 1000)) for mode in ("light", "dark"))
    assert names == expected
    for name in names:
        image = QImage(str(out / name))
        width, height = (800, 600) if "800x600" in name else (1600, 1000)
        assert (image.width(), image.height()) == (width, height), name
        # Light screens are light and dark ones dark: the theme reached every pixel's base.
        corner = QColor.fromRgb(image.pixel(width - 5, height // 2))
        assert (theme.luminance(corner) < 0.4) == ("dark" in name), name
