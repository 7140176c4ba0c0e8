"""Markdown to the HTML subset QTextBrowser renders, with highlighted code and copy links.

QTextDocument understands HTML 4 attributes (border, cellpadding, bgcolor, align) far better
than CSS, and has no left border for blocks: tables get border attributes, a blockquote is a
two-cell table whose narrow first cell is the bar, and every colour comes from the palette
(see `MarkdownColors.from_palette`) so light and dark both stay readable.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound
from PySide6.QtGui import QColor, QPalette

from desktop.ui import theme


@dataclass(frozen=True)
class MarkdownColors:
    text: str = "#1b1b1b"
    muted: str = "#595959"
    background: str = "#ffffff"
    code_background: str = "#f2f3f5"
    border: str = "#b8b8b8"
    header_background: str = "#eceef1"
    bar: str = "#8a8f98"
    dark: bool = False

    @classmethod
    def from_palette(cls, palette: QPalette, background: QColor | None = None) -> MarkdownColors:
        """Colours for text drawn on `background` (the palette's window colour by default):
        muted text keeps 4.5:1, the quote bar and borders stay visible (3:1 for the bar)."""
        role = QPalette.ColorRole
        back = QColor(background or palette.color(role.Window))
        text = palette.color(role.WindowText)
        dark = theme.luminance(back) < 0.4
        muted = theme.readable(_mix(text, back, 0.35), back)
        shade = 0.10 if dark else 0.05
        return cls(
            text=text.name(), muted=muted.name(), background=back.name(),
            code_background=_mix(text, back, 1 - shade).name(),
            border=_mix(text, back, 0.7).name(),
            header_background=_mix(text, back, 1 - shade * 1.6).name(),
            bar=theme.readable(_mix(text, back, 0.5), back, 3.0).name(),
            dark=dark)


def _mix(a: QColor, b: QColor, share_of_b: float) -> QColor:
    t = max(0.0, min(1.0, share_of_b))
    return QColor(round(a.red() * (1 - t) + b.red() * t), round(a.green() * (1 - t) + b.green() * t),
                  round(a.blue() * (1 - t) + b.blue() * t))


@lru_cache(maxsize=2)
def _formatter(dark: bool) -> HtmlFormatter:
    # Inline styles: QTextBrowser ignores most stylesheet selectors but honours style="".
    # Both styles keep their token colours readable on the code background we draw.
    return HtmlFormatter(noclasses=True, nowrap=True, style="monokai" if dark else "default")


def _highlight_code(code: str, lang: str, dark: bool) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    out = highlight(code, lexer, _formatter(dark))
    # Pygments' own backgrounds would paint boxes over our code background.
    return re.sub(r"background-color: ?#[0-9a-fA-F]{3,6};? ?", "", out)


_ALIGN = re.compile(r"text-align:\s*(left|right|center)")


class MarkdownRenderer:
    """Renders a message; code blocks get an index so a "Copy" link can find their source."""

    def __init__(self, dark: bool = False, colors: MarkdownColors | None = None) -> None:
        self.colors = colors or MarkdownColors(dark=dark)
        # breaks: a single newline stays a line break, as in every chat app (models write
        # addresses, poems and lists without blank lines).
        self.md = (MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
                   .enable("table").enable("strikethrough"))

        # markdown-it binds rules to its renderer, so pass plain functions that close over us.
        def rule(method):  # noqa: ANN001, ANN202
            return lambda _renderer, tokens, idx, options, env: method(tokens, idx)

        for name, method in (("fence", self._fence), ("code_block", self._fence),
                             ("table_open", self._table_open), ("th_open", self._cell_open),
                             ("td_open", self._cell_open), ("blockquote_open", self._quote_open),
                             ("blockquote_close", self._quote_close),
                             ("code_inline", self._code_inline),
                             ("heading_open", self._heading_open)):
            self.md.add_render_rule(name, rule(method))
        self.code_blocks: list[str] = []
        self.copied: int | None = None  # the code block whose link says "Copied"

    @property
    def dark(self) -> bool:
        return self.colors.dark

    def _fence(self, tokens, idx) -> str:  # noqa: ANN001 - markdown-it signature
        token = tokens[idx]
        lang = (token.info or "").strip().split(" ")[0]
        index = len(self.code_blocks)
        self.code_blocks.append(token.content)
        c = self.colors
        label = html.escape(lang or "code")
        link = "Copied" if self.copied == index else "Copy"
        body = _highlight_code(token.content.rstrip("\n"), lang, c.dark)
        # A table so the block has a background and a header row; <pre> never wraps, so a
        # long line widens the document and the message scrolls sideways instead of cutting.
        return (
            f'<table width="100%" cellspacing="0" cellpadding="6" border="0" '
            f'bgcolor="{c.code_background}" style="margin-top:4px; margin-bottom:6px">'
            f'<tr><td><span style="color:{c.muted}">{label}</span> &nbsp; '
            f'<a href="copy:{index}">{link}</a></td></tr>'
            f'<tr><td><pre style="margin:0; font-family:monospace; color:{c.text}">{body}</pre>'
            f"</td></tr></table>"
        )

    def _table_open(self, tokens, idx) -> str:  # noqa: ANN001
        c = self.colors
        return (f'<table border="1" cellspacing="0" cellpadding="5" '
                f'style="border-collapse:collapse; border-color:{c.border}; border-style:solid;'
                f' margin-top:4px; margin-bottom:6px">\n')

    def _cell_open(self, tokens, idx) -> str:  # noqa: ANN001
        token = tokens[idx]
        match = _ALIGN.search(str(token.attrGet("style") or ""))
        align = match.group(1) if match else "left"  # headers line up with their column
        if token.tag == "th":
            return (f'<th align="{align}" bgcolor="{self.colors.header_background}" '
                    f'style="border-color:{self.colors.border}">')
        return f'<td align="{align}" style="border-color:{self.colors.border}">'

    def _quote_open(self, tokens, idx) -> str:  # noqa: ANN001
        return (f'<table cellspacing="0" cellpadding="0" border="0" '
                f'style="margin-top:4px; margin-bottom:6px"><tr>'
                f'<td width="4" bgcolor="{self.colors.bar}"></td>'
                f'<td style="padding-left:10px; color:{self.colors.muted}">')

    def _quote_close(self, tokens, idx) -> str:  # noqa: ANN001
        return "</td></tr></table>\n"

    def _code_inline(self, tokens, idx) -> str:  # noqa: ANN001
        c = self.colors
        return (f'<code style="font-family:monospace; background-color:{c.code_background}">'
                f"{html.escape(tokens[idx].content)}</code>")

    def _heading_open(self, tokens, idx) -> str:  # noqa: ANN001
        # Qt's h1 is xx-large: too loud inside a chat message.
        size = {"h1": "x-large", "h2": "large", "h3": "medium"}.get(tokens[idx].tag, "medium")
        return (f'<{tokens[idx].tag} style="font-size:{size}; margin-top:10px; '
                f'margin-bottom:4px">')

    def render(self, text: str, keep_blocks: bool = False) -> str:
        """HTML for `text`. keep_blocks: append to code_blocks (a streamed reply rendered in
        pieces) instead of starting over."""
        if not keep_blocks:
            self.code_blocks = []
        return self.md.render(text)
