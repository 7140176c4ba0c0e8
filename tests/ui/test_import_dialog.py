"""Import chats… in the real window: the preview lists what was found and what could not be
read, Import brings the chats into the sidebar off the GUI thread, and a second look finds
everything already imported."""

from __future__ import annotations

from pathlib import Path

from desktop.app import build_window
from desktop.core.settings import Settings
from desktop.ui.import_dialog import ImportDialog
from tests import import_samples as samples
from tests.ui.test_models_window import accessible_name, assert_readable, controls

WAIT_MS = 60_000  # a generous bound for a slow machine; the tests wait for the signals


def _window(qtbot, data_dir: Path):  # noqa: ANN001, ANN202
    settings = Settings(data_dir / "settings.json")
    settings.values["starter_registered"] = True
    settings.save()
    window = build_window(data_dir)
    qtbot.addWidget(window)
    window.show()
    return window


def _rows(dialog: ImportDialog) -> list[tuple[str, str, str]]:
    tree = dialog.found
    return [tuple(tree.topLevelItem(i).text(c) for c in range(3))  # type: ignore[union-attr]
            for i in range(tree.topLevelItemCount())]


def _sidebar_titles(window) -> list[str]:  # noqa: ANN001
    model = window.sidebar.model
    return [model.index(row, 0).data() for row in range(model.rowCount())]


def test_preview_then_import_then_nothing_new(qtbot, data_dir: Path, tmp_path: Path) -> None:
    export = samples.write_openwebui(tmp_path / "owui")
    window = _window(qtbot, data_dir)
    try:
        window.app_actions["import"].trigger()
        dialog: ImportDialog = window._import_dialog
        assert dialog.isVisible()
        assert [type(w).__name__ for w in controls(dialog) if not accessible_name(w)] == []
        with qtbot.waitSignal(dialog.previewed, timeout=WAIT_MS):
            dialog.set_source(str(export))
        assert _rows(dialog) == [("Zeitzonen 🕘", "3", "new"), ("Legacy list", "2", "new"),
                                 ("New Chat", "0", "empty, skipped")]
        assert dialog.status.text() == "Open WebUI: 2 new conversations, 1 empty."
        assert dialog.problems.isVisible()
        assert [dialog.problems.item(i).text() for i in range(dialog.problems.count())] == [
            f"{export} (chat 4): it has no chat."]
        assert_readable(dialog)
        assert dialog.import_button.isEnabled()

        with qtbot.waitSignal(dialog.imported, timeout=WAIT_MS):
            dialog.import_button.click()
        assert dialog.status.text() == "Imported 2 conversations (5 messages)."
        assert [row[2] for row in _rows(dialog)] == ["imported", "imported", "empty, skipped"]
        qtbot.waitUntil(lambda: "Zeitzonen 🕘" in _sidebar_titles(window), timeout=WAIT_MS)
        assert {"Zeitzonen 🕘", "Legacy list"} <= set(_sidebar_titles(window))

        with qtbot.waitSignal(dialog.previewed, timeout=WAIT_MS):
            dialog.set_source(str(export), app="openwebui")
        assert [row[2] for row in _rows(dialog)] == ["already imported", "already imported",
                                                     "empty, skipped"]
        assert not dialog.import_button.isEnabled()
    finally:
        window.close()


def test_gpt4all_folder_with_localdocs_and_a_file_it_cannot_read(qtbot, data_dir: Path,
                                                                  tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha beta gamma\n", encoding="utf-8")
    folder = samples.write_gpt4all(tmp_path / "GPT4All", docs)
    window = _window(qtbot, data_dir)
    try:
        window.app_actions["import"].trigger()
        dialog: ImportDialog = window._import_dialog
        with qtbot.waitSignal(dialog.previewed, timeout=WAIT_MS):
            dialog.set_source(str(folder))
        rows = _rows(dialog)
        assert ("Café ☕ and Zürich", "4", "new") in rows
        assert ("LocalDocs: Recherche ü", "", "1 folder to index") in rows
        assert dialog.status.text() == ("GPT4All: 2 new conversations, 1 empty, "
                                        "1 LocalDocs collection.")
        assert "it is damaged" in dialog.problems.item(0).text()
        with qtbot.waitSignal(dialog.imported, timeout=WAIT_MS) as imported:
            dialog.import_button.click()
        report = imported.args[0]
        [job] = report.jobs
        assert job.done.wait(WAIT_MS / 1000) and job.state.indexed == 1
        assert "Recherche ü" in dialog.status.text()

        not_chats = tmp_path / "list.json"
        not_chats.write_text("[]", encoding="utf-8")
        with qtbot.waitSignal(dialog.previewed, timeout=WAIT_MS):
            dialog.set_source(str(not_chats))
        assert dialog.status.text().startswith("Hearth found no chats it knows how to import")
        assert not dialog.import_button.isEnabled() and _rows(dialog) == []
    finally:
        window.close()


def test_the_window_menu_reaches_import_settings_and_about(qtbot, data_dir: Path) -> None:
    """Without a menu bar on Linux and Windows, the toolbar's menu is how these are found."""
    window = _window(qtbot, data_dir)
    try:
        button = window.toolbar.menu_button
        assert button.isVisible() and button.accessibleName() == "Hearth menu"
        assert [a.text() for a in button.menu().actions()] == [
            "Import chats…", "Settings…", "About Hearth"]
        button.menu().actions()[0].trigger()
        assert window._import_dialog.isVisible()
        window._import_dialog.close()
    finally:
        window.close()
