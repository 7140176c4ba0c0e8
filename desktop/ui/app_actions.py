"""App-wide actions: Settings… (Ctrl+, / Cmd+,), About Hearth and Import chats…, usable from
every window.

app.py installs them on the main window; a menu or toolbar can add the same QActions.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from desktop.core.context import AppContext


def open_settings(parent: QWidget | None, ctx: AppContext) -> Any:
    """Show the Settings dialog (one at a time) and return it."""
    from desktop.ui.settings_dialog import SettingsDialog

    dialog = getattr(parent, "_settings_dialog", None)
    if dialog is None or not dialog.isVisible():
        dialog = SettingsDialog(ctx, parent)
        if parent is not None:
            parent._settings_dialog = dialog  # type: ignore[attr-defined]
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def open_about(parent: QWidget | None, ctx: AppContext) -> Any:
    from desktop.ui.about_dialog import AboutDialog

    model = getattr(getattr(parent, "service", None), "model", None)
    dialog = AboutDialog(ctx, parent, engine_info=getattr(model, "loaded", None))
    if parent is not None:
        parent._about_dialog = dialog  # type: ignore[attr-defined]
    dialog.show()
    return dialog


def open_import(parent: QWidget | None, ctx: AppContext) -> Any:
    """Show Import chats… (one at a time); the window's chat list refreshes after an import."""
    from desktop.ui.import_dialog import ImportDialog

    dialog = getattr(parent, "_import_dialog", None)
    if dialog is None or not dialog.isVisible():
        dialog = ImportDialog(ctx, parent)
        refresh = getattr(parent, "refresh_conversations", None)
        if refresh is not None:
            dialog.imported.connect(lambda _report: refresh())
        if parent is not None:
            parent._import_dialog = dialog  # type: ignore[attr-defined]
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def install_app_actions(window: QWidget, ctx: AppContext) -> dict[str, QAction]:
    """Add Settings… and About to `window`; their shortcuts work in every Hearth window."""
    settings = QAction("Settings…", window)
    # Ctrl+, is Cmd+, on macOS (Qt maps Ctrl to Command there): the platform convention.
    settings.setShortcut(QKeySequence("Ctrl+,"))
    settings.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    settings.setMenuRole(QAction.MenuRole.PreferencesRole)
    settings.triggered.connect(lambda: open_settings(window, ctx))
    about = QAction("About Hearth", window)
    about.setMenuRole(QAction.MenuRole.AboutRole)
    about.triggered.connect(lambda: open_about(window, ctx))
    importer = QAction("Import chats…", window)  # from GPT4All, ChatGPT, LM Studio, Jan...
    importer.triggered.connect(lambda: open_import(window, ctx))
    window.addAction(settings)
    window.addAction(about)
    window.addAction(importer)
    return {"settings": settings, "about": about, "import": importer}
