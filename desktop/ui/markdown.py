"""Markdown to the HTML subset QTextBrowser renders, with highlighted code and copy links."""

from __future__ import annotations

import html
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound


@lru_cache(maxsize=2)
def _formatter(dark: bool) -> HtmlFormatter:
    # Inline styles: QTextBrowser ignores most stylesheet selectors but honours style="".
    return HtmlFormatter(noclasses=True, nowrap=True, style="monokai" if dark else "friendly")


def _highlight_code(code: str, lang: str, dark: bool) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, _formatter(dark))


class MarkdownRenderer:
    """Renders a message; code blocks get an index so a "Copy" link can find their source."""

    def __init__(self, dark: bool = False) -> None:
        self.dark = dark
        self.md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
        # markdown-it binds rules to its renderer, so pass a plain function that closes over us.
        def fence(_renderer, tokens, idx, options, env):  # noqa: ANN001, ANN202
            return self._fence(tokens, idx, options, env)

        self.md.add_render_rule("fence", fence)
        self.md.add_render_rule("code_block", fence)
        self.code_blocks: list[str] = []

    def _fence(self, tokens, idx, options, env) -> str:  # noqa: ANN001 - markdown-it signature
        token = tokens[idx]
        lang = (token.info or "").strip().split(" ")[0]
        index = len(self.code_blocks)
        self.code_blocks.append(token.content)
        background = "#272822" if self.dark else "#f4f4f4"
        label = html.escape(lang or "code")
        body = _highlight_code(token.content.rstrip("\n"), lang, self.dark)
        return (
            f'<table width="100%" cellpadding="6" style="background:{background}; margin:4px 0">'
            f'<tr><td><span style="color:#888">{label}</span> &nbsp; '
            f'<a href="copy:{index}">Copy</a></td></tr>'
            f'<tr><td><pre style="margin:0; font-family:monospace">{body}</pre></td></tr></table>'
        )

    def render(self, text: str) -> str:
        self.code_blocks = []
        return self.md.render(text)
