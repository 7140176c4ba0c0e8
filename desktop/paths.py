"""Where Hearth keeps things: the user data dir (overridable) and the bundled resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "Hearth"
DATA_DIR_ENV = "HEARTH_DATA_DIR"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder for the database, settings, logs and models; created on first use.

    Order: the --data-dir option, then HEARTH_DATA_DIR, then the platform's user data dir.
    Nothing is ever written next to the code, so upgrades and uninstalls keep user data.
    """
    chosen = override or os.environ.get(DATA_DIR_ENV) or user_data_dir(APP_NAME, appauthor=False)
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path(root: Path) -> Path:
    return root / "hearth.sqlite3"


def settings_path(root: Path) -> Path:
    return root / "settings.json"


def logs_dir(root: Path) -> Path:
    path = root / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir(root: Path) -> Path:
    return root / "models"


def downloads_path(root: Path) -> Path:
    """Unfinished downloads, so they come back (paused) after a restart."""
    return root / "downloads.json"


def resources_dir() -> Path:
    """`resources/` beside the package in a checkout, or inside the PyInstaller bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def worker_command() -> list[str]:
    """How to start the engine worker: the frozen executable re-launched, or this interpreter."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "engine-worker"]
    return [sys.executable, "-m", "desktop", "engine-worker"]
