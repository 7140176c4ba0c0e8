"""App-wide Settings (Ctrl+, / Cmd+,) and About, opened from the real main window."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from desktop.app import build_window
from desktop.core.settings import Settings
from desktop.ui import theme
from desktop.ui.about_dialog import AboutDialog
from desktop.ui.settings_dialog import SettingsDialog
from tests.ui.test_models_window import accessible_name, assert_readable, controls

REPO = Path(__file__).resolve().parents[2]


def _window(qtbot, data_dir: Path):  # noqa: ANN001, ANN202
    settings = Settings(data_dir / "settings.json")
    settings.values["starter_registered"] = True
    settings.save()
    window = build_window(data_dir)
    qtbot.addWidget(window)
    window.show()
    return window


def test_ctrl_comma_opens_settings_which_saves_and_applies(qtbot, data_dir: Path,
                                                           tmp_path: Path) -> None:
    window = _window(qtbot, data_dir)
    try:
        action = window.app_actions["settings"]
        assert action.shortcut().toString() == "Ctrl+,"  # Qt shows it as Cmd+, on macOS
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
        qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: getattr(window, "_settings_dialog", None) is not None)
        dialog: SettingsDialog = window._settings_dialog
        assert dialog.isVisible()
        hint = dialog.minimumSizeHint()
        assert hint.width() <= 800 and hint.height() <= 600
        assert [type(w).__name__ for w in controls(dialog) if not accessible_name(w)] == []
        assert dialog.data_folder.text() == str(data_dir)
        assert dialog.gpu_layers.text() == "Auto (what free VRAM holds)"

        assert dialog.set_models_folder(str(tmp_path / "models"))
        dialog.theme_box.setCurrentIndex(dialog.theme_box.findData("dark"))
        dialog.n_ctx.setValue(8192)
        dialog.gpu_layers.setValue(12)
        dialog.kv_ram.setValue(512)
        dialog.save()
        assert not dialog.isVisible()
        saved = Settings(data_dir / "settings.json")
        assert saved.get("theme") == "dark" and saved.get("n_ctx") == 8192
        assert saved.get("n_gpu_layers") == 12 and saved.get("kv_states_ram_mb") == 512
        assert saved.get("models_dir") == str((tmp_path / "models").resolve())
        assert theme.is_dark(QApplication.palette())
        assert_readable(window)

        again = window.app_actions["settings"]
        again.trigger()
        dialog = window._settings_dialog
        dialog.gpu_layers.setValue(-1)  # back to automatic: stored as "no number"
        dialog.theme_box.setCurrentIndex(dialog.theme_box.findData("light"))
        dialog.save()
        assert Settings(data_dir / "settings.json").get("n_gpu_layers") is None
        assert not theme.is_dark(QApplication.palette())
    finally:
        theme.apply_theme("system")
        window.close()
        window.ctx.close()


def test_about_tells_version_engine_licences_data_and_privacy(qtbot, data_dir: Path) -> None:
    from desktop import __version__

    window = _window(qtbot, data_dir)
    try:
        window.app_actions["about"].trigger()
        dialog: AboutDialog = window._about_dialog
        qtbot.addWidget(dialog)
        text = dialog.body.text()
        facts = dict(dialog.facts)
        assert facts["Version"] == f"Hearth {__version__}"
        assert facts["Engine"].startswith("llama-cpp-python 0.")
        assert "MIT" in facts["Licences"] and "LGPL" in facts["Licences"]
        assert facts["Data folder"] == str(data_dir) and str(data_dir) in text
        assert "No telemetry" in facts["Privacy"]
        hint = dialog.minimumSizeHint()
        assert hint.width() <= 800 and hint.height() <= 600
    finally:
        window.close()
        window.ctx.close()


def test_about_does_not_load_llama_cpp_into_the_gui() -> None:
    code = ("import sys\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "import tempfile, pathlib\n"
            "from desktop.core.context import AppContext\n"
            "from desktop.ui.about_dialog import AboutDialog\n"
            "ctx = AppContext(pathlib.Path(tempfile.mkdtemp()))\n"
            "dialog = AboutDialog(ctx)\n"
            "assert 'llama-cpp-python' in dialog.body.text()\n"
            "print('llama_cpp' in sys.modules)\n"
            "ctx.close()\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_settings_show_saved_chat_states_and_clear_them(qtbot, data_dir: Path) -> None:
    """Issue 12: the saved states' room is shown in Settings, with a Clear button."""
    folder = data_dir / "kv-states" / "model-fingerprint"
    folder.mkdir(parents=True)
    for chat in (1, 2):
        (folder / f"{chat}.kvstate").write_bytes(b"s" * 3 * 2**20)
    window = _window(qtbot, data_dir)
    try:
        window.app_actions["settings"].trigger()
        dialog: SettingsDialog = window._settings_dialog
        qtbot.waitUntil(lambda: dialog.kv_usage.text() == "2 saved chat states, 6 MB",
                        timeout=60_000)
        assert dialog.kv_clear.accessibleName() == "Clear"
        with qtbot.waitSignal(dialog.states_cleared, timeout=60_000) as freed:
            dialog.kv_clear.click()
        assert freed.args == [6 * 2**20]
        assert dialog.kv_usage.text() == "Cleared: 2 saved chat states, 6 MB"
        assert not list(folder.glob("*.kvstate"))
        assert_readable(dialog)
        dialog.close()
    finally:
        window.close()


def test_a_checked_box_shows_its_tick_in_the_dark_theme(qtbot) -> None:  # noqa: ANN001
    """The dark sheet styles the indicator itself, so Fusion draws no tick there: the tick is
    an image (resources/icons/check-dark.png). Drawn, a checked box holds dark tick pixels on
    its light fill (20 here; 4 without the image, at its rounded corners)."""
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QCheckBox, QStyle, QStyleOptionButton

    app = QApplication.instance()
    theme.apply_theme("dark", app)
    try:
        boxes = []
        for checked in (True, False):
            box = QCheckBox("Speculative decoding")
            box.setChecked(checked)
            qtbot.addWidget(box)
            box.show()
            boxes.append(box)
        qtbot.waitExposed(boxes[-1])

        def dark_pixels(box: QCheckBox) -> int:
            option = QStyleOptionButton()
            box.initStyleOption(option)
            rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
            image = box.grab(rect).toImage()
            return sum(QColor(image.pixel(x, y)).lightness() < 80
                       for x in range(image.width()) for y in range(image.height()))

        # The unchecked box is drawn dark all over (#2a2c30): count only within the fill of a
        # checked one, which is light (#8ab4f8) wherever the tick is not.
        checked_dark = dark_pixels(boxes[0])
        assert checked_dark >= 12, f"no tick drawn on the checked box ({checked_dark})"
        assert checked_dark < dark_pixels(boxes[1]) // 2  # mostly the light fill around it
    finally:
        theme.apply_theme("light", app)
