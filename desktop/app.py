"""Builds the QApplication and the main window: the only place the GUI is wired together."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, cast

from desktop import __version__, paths


def create_app(argv: list[str] | None = None) -> Any:
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = cast(QApplication, QApplication.instance() or QApplication(argv or [sys.argv[0]]))
    app.setApplicationName("Hearth")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Hearth")
    app.setDesktopFileName("hearth")
    style = paths.resources_dir() / "styles" / "hearth.qss"
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    icon = paths.resources_dir() / "icons" / "hearth-256.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def install_excepthooks(window: Any) -> None:
    """Backstops: an unexpected error is shown in the window instead of killing the app."""

    def report(exc: BaseException) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: window.show_error(exc))

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        exc.__traceback_text__ = "".join(traceback.format_exception(kind, exc, tb))  # type: ignore[attr-defined]
        sys.__excepthook__(kind, exc, tb)
        report(exc)

    sys.excepthook = hook
    threading.excepthook = lambda args: hook(
        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def build_window(data_dir: Path) -> Any:
    from desktop.core.context import AppContext
    from desktop.ui.app_actions import install_app_actions
    from desktop.ui.main_window import MainWindow
    from desktop.ui.theme import apply_theme

    ctx = AppContext(data_dir)
    apply_theme(ctx.settings.get("theme") or "system")
    window = MainWindow(ctx)
    actions = install_app_actions(window, ctx)
    window.app_actions = actions  # type: ignore[attr-defined]  # tests and menus reach them
    window.toolbar.set_app_actions([actions["import"], actions["settings"], actions["about"]])
    # Watched collections are re-indexed while the app runs, whichever windows are open.
    ctx.start_watching()
    if ctx.settings.problem:
        window.show_error(ctx.settings.problem)  # a damaged settings file, set aside once
    return window


def run_gui(args: argparse.Namespace) -> int:
    if getattr(args, "self_test", False):
        from desktop.cli.self_test import run_self_test

        # The self-test gets the app's builders instead of importing this module (no circle).
        return run_self_test(getattr(args, "model", None), create_app, build_window)
    app = create_app()
    window = build_window(paths.data_dir(args.data_dir))
    install_excepthooks(window)
    window.show()
    if os.environ.get("HEARTH_STARTUP_PROBE"):
        from desktop.startup_probe import startup_probe

        startup_probe(window)
    code = app.exec()
    window.ctx.close()
    return code
