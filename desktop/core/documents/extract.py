"""Text extraction with locations: pages for PDF, headings for DOCX/Markdown/HTML, line ranges
for text and code. Every failure is a DocumentError with a reason the user can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from desktop.core.errors import HearthError

TEXT_SUFFIXES = {".txt", ".text", ".log", ".csv", ".tsv", ".rst", ".org", ".tex", ".json",
                 ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml"}
CODE_SUFFIXES = {".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cc", ".cpp",
                 ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".kt", ".scala", ".sh",
                 ".bash", ".ps1", ".sql", ".r", ".m", ".lua", ".pl", ".dart", ".vue", ".css",
                 ".scss"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED = {".pdf", ".docx"} | TEXT_SUFFIXES | CODE_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES


class DocumentError(HearthError):
    """A file that could not be indexed; the batch goes on without it."""


@dataclass
class Section:
    """A piece of a document with where it came from."""

    text: str
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    heading: str | None = None


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix == ".docx":
        return "docx"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in CODE_SUFFIXES:
        return "code"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return None


def extract(path: Path, max_bytes: int) -> list[Section]:
    kind = kind_of(path)
    if kind is None:
        raise DocumentError(f"{path.name}: skipped, {path.suffix or 'no extension'} files are "
                            "not supported (PDF, DOCX, Markdown, HTML, text and code are).")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
    if size == 0:
        raise DocumentError(f"{path.name}: the file is empty.")
    if size > max_bytes:
        raise DocumentError(f"{path.name}: {size / 1e6:.0f} MB is over the {max_bytes / 1e6:.0f} "
                            "MB limit for one file (change it in settings).")
    try:
        sections = {"pdf": _pdf, "docx": _docx, "markdown": _markdown, "html": _html,
                    "code": _lines, "text": _lines}[kind](path)
    except DocumentError:
        raise
    except OSError as exc:
        raise DocumentError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
    except Exception as exc:  # noqa: BLE001 - parsers raise anything on damaged files
        raise DocumentError(f"{path.name}: the file is damaged or not a valid {kind.upper()} "
                            f"file ({type(exc).__name__}: {exc}).") from exc
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise DocumentError(f"{path.name}: no text found in the file.")
    return sections


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    # UTF-16/32 files (Windows Notepad's "Unicode") are recognised by their byte-order mark;
    # without one, decoding as UTF-16 would turn any even-length legacy text into CJK noise.
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is not None:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{path.name}: the text is damaged ({encoding} with invalid "
                                "bytes).") from exc
    elif b"\x00" in raw[:8192]:
        raise DocumentError(f"{path.name}: this looks like a binary file, not text.")
    else:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
        try:
            text = raw.decode("cp1252")  # Windows' legacy encoding: curly quotes, € and so on
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text[:8192])
    if printable < 0.95 * min(len(text), 8192):
        raise DocumentError(f"{path.name}: this looks like a binary file, not text.")
    return text


def _lines(path: Path) -> list[Section]:
    """Plain text and code: paragraphs (blank-line separated blocks) with their line range."""
    lines = _read_text(path).splitlines()
    sections: list[Section] = []
    block: list[str] = []
    start = 1
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            sections.append(Section("\n".join(block), line_start=start, line_end=number - 1))
            block = []
    if block:
        sections.append(Section("\n".join(block), line_start=start, line_end=len(lines)))
    return sections


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _markdown(path: Path) -> list[Section]:
    lines = _read_text(path).splitlines()
    sections: list[Section] = []
    trail: list[str] = []
    block: list[str] = []
    start = 1
    in_fence = False

    def flush(end: int) -> None:
        nonlocal block
        if block:
            sections.append(Section("\n".join(block), line_start=start, line_end=end,
                                    heading=" > ".join(trail) or None))
            block = []

    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush(number - 1)
            level = len(match.group(1))
            trail[:] = trail[: level - 1] + [match.group(2)]
            block, start = [line], number
            continue
        if not line.strip() and not in_fence:
            flush(number - 1)
            continue
        if not block:
            start = number
        block.append(line)
    flush(len(lines))
    return sections


def _pdf(path: Path) -> list[Section]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise DocumentError(f"{path.name}: the PDF is encrypted with a password.") from exc
        raise DocumentError(f"{path.name}: the PDF is damaged or not a PDF ({exc}).") from exc
    sections: list[Section] = []
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            text = textpage.get_text_bounded() or ""
            textpage.close()
            page.close()
            for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
                if paragraph.strip():
                    sections.append(Section(paragraph.strip(), page=index + 1))
        pages = len(document)
    finally:
        document.close()
    if not sections and pages:
        raise DocumentError(f"{path.name}: no text layer (a scanned PDF?). Hearth reads the text "
                            "of PDFs; run OCR on it first.")
    return sections


def _docx(path: Path) -> list[Section]:
    import docx

    document = docx.Document(str(path))
    sections: list[Section] = []
    trail: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        if style.startswith("Heading") or style == "Title":
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            trail[:] = trail[: level - 1] + [text]
        sections.append(Section(text, heading=" > ".join(trail) or None))
    for table in document.tables:
        for row in table.rows:
            cells = " | ".join(cell.text.strip() for cell in row.cells if cell.text.strip())
            if cells:
                sections.append(Section(cells, heading=" > ".join(trail) or None))
    return sections


def _html(path: Path) -> list[Section]:
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(_read_text(path))
    for node in tree.css("script, style, noscript, template, svg"):
        node.decompose()
    sections: list[Section] = []
    trail: list[str] = []
    body = tree.body or tree.root
    if body is None:
        return sections
    for node in body.css("h1, h2, h3, h4, h5, h6, p, li, pre, td, th, blockquote, dd, dt"):
        text = node.text(separator=" ", strip=True)
        if not text:
            continue
        if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            level = int(node.tag[1])
            trail[:] = trail[: level - 1] + [text]
        sections.append(Section(text, heading=" > ".join(trail) or None))
    if not sections:
        text = body.text(separator="\n", strip=True)
        sections.append(Section(text))
    return sections
