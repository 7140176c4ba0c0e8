"""Colours that stay readable: a WCAG contrast helper, light and dark palettes, and status
tones (good, info, warning, error) derived from the palette in use.

No widget hard-codes a colour: a tone is picked for the background it sits on and darkened or
lightened until its contrast is at least 4.5:1 (WCAG AA for body text), in light and dark.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from desktop.paths import resources_dir

MIN_CONTRAST = 4.5
THEMES = ("system", "light", "dark")

# Hues only: the lightness is chosen per background by readable().
TONES = {"good": "#1e8449", "info": "#2874a6", "warning": "#b9770e", "error": "#c0392b"}


def _channel(value: float) -> float:
    value /= 255
    return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4


def luminance(color: QColor) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    return (0.2126 * _channel(color.red()) + 0.7152 * _channel(color.green())
            + 0.0722 * _channel(color.blue()))


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio between two colours, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable(color: QColor | str, background: QColor, minimum: float = MIN_CONTRAST) -> QColor:
    """`color`'s hue, made darker (on a light background) or lighter (on a dark one) until it
    reaches `minimum` contrast against `background`."""
    result = QColor(color)
    dark_background = luminance(background) < 0.5
    for _ in range(40):
        if contrast(result, background) >= minimum:
            return result
        lightness = result.lightnessF()
        lightness = min(1.0, lightness + 0.04) if dark_background else max(0.0, lightness - 0.04)
        result = QColor.fromHslF(max(result.hslHueF(), 0.0), result.hslSaturationF(),
                                 lightness, result.alphaF())
    return QColor("white") if dark_background else QColor("black")


def tone(name: str, palette: QPalette | None = None) -> QColor:
    """The status colour `name` (good/info/warning/error), readable on the palette's table
    rows and window background (tables and labels both use it)."""
    palette = palette or QApplication.palette()
    color = QColor(TONES[name])
    # Tables alternate Base and AlternateBase rows; labels sit on Window. Two passes: a step
    # for one background can cost contrast against another.
    for _ in range(2):
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase,
                     QPalette.ColorRole.Window):
            color = readable(color, palette.color(role))
    return color


def set_text_tone(widget: QWidget, name: str | None) -> None:
    """Colour a label's text with a tone (None: the normal text colour again). Done with a
    one-rule style sheet, which Qt turns into the widget's palette: an explicit palette would
    be lost when the app's style sheet changes with the theme. Call it again after a theme
    switch (StatusLine does, on ApplicationPaletteChange)."""
    if name is None:
        widget.setStyleSheet("")
        return
    widget.setStyleSheet(f"color: {tone(name, QApplication.palette()).name()}")


def _palette(dark: bool) -> QPalette:
    role = QPalette.ColorRole
    colors = ({role.Window: "#202124", role.WindowText: "#e8eaed", role.Base: "#2a2c30",
               role.AlternateBase: "#313338", role.Text: "#e8eaed", role.Button: "#3a3d42",
               role.ButtonText: "#e8eaed", role.BrightText: "#ffffff", role.Highlight: "#3d6fb6",
               role.HighlightedText: "#ffffff", role.ToolTipBase: "#2d2f33",
               role.ToolTipText: "#e8eaed", role.PlaceholderText: "#a0a4aa",
               role.Link: "#8ab4f8", role.Light: "#3c3f44", role.Midlight: "#34373b",
               role.Mid: "#4a4d52", role.Dark: "#b0b4ba", role.Shadow: "#000000"}
              if dark else
              {role.Window: "#f3f3f3", role.WindowText: "#1b1b1b", role.Base: "#ffffff",
               role.AlternateBase: "#f0f2f5", role.Text: "#1b1b1b", role.Button: "#e9e9e9",
               role.ButtonText: "#1b1b1b", role.BrightText: "#ffffff", role.Highlight: "#2f62b0",
               role.HighlightedText: "#ffffff", role.ToolTipBase: "#ffffdc",
               role.ToolTipText: "#1b1b1b", role.PlaceholderText: "#6b6b6b",
               role.Link: "#1a57b8", role.Light: "#ffffff", role.Midlight: "#e3e3e3",
               role.Mid: "#b8b8b8", role.Dark: "#595959", role.Shadow: "#767676"})
    palette = QPalette()
    for key, value in colors.items():
        palette.setColor(key, QColor(value))
    disabled = QColor("#7c8087") if dark else QColor("#767676")
    for key in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, key, disabled)
    return palette


_DARK_MARK = "\n/* hearth dark theme */\n"
_DARK_SHEET = """
QCheckBox::indicator { width: 13px; height: 13px; border: 1px solid #9aa0a6;
                       border-radius: 3px; background: #2a2c30; }
QCheckBox::indicator:checked { background: #8ab4f8; border-color: #8ab4f8; image: url(%s); }
QCheckBox::indicator:disabled { border-color: #5f6368; }
"""


def _dark_sheet() -> str:
    # A sheet that styles the indicator draws no tick of its own: the tick is an image
    # (resources/icons/check-dark.png, with an @2x twin for high-DPI screens).
    return _DARK_SHEET % (resources_dir() / "icons" / "check-dark.png").as_posix()


def palette_for(mode: str) -> QPalette:
    """The palette of a theme: "light", "dark", or "system" (the platform's own)."""
    if mode in ("light", "dark"):
        return _palette(mode == "dark")
    app = QApplication.instance()
    style = app.style() if isinstance(app, QApplication) else None
    return style.standardPalette() if style is not None else QPalette()


def apply_theme(mode: str, app: QApplication | None = None) -> None:
    """Switch the whole app to a theme. Light and dark use the Fusion style, which draws with
    the palette everywhere (native styles ignore parts of it); "system" keeps the platform's."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    if not isinstance(app, QApplication):
        return
    if mode not in THEMES:
        mode = "system"
    if not hasattr(app, "_hearth_system_style"):
        app._hearth_system_style = app.style().name()  # type: ignore[attr-defined]
    if mode == "system":
        app.setStyle(app._hearth_system_style)  # type: ignore[attr-defined]
    else:
        app.setStyle("Fusion")
    app.setPalette(palette_for(mode))
    sheet = app.styleSheet().split(_DARK_MARK)[0]
    # Fusion draws check boxes with an outline darker than the window: invisible on dark.
    app.setStyleSheet(sheet + (_DARK_MARK + _dark_sheet() if mode == "dark" else ""))


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QApplication.palette()
    return luminance(palette.color(QPalette.ColorRole.Window)) < 0.4
