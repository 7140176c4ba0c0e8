"""Text extraction with locations: pages for PDF, headings for DOCX/Markdown/HTML, line ranges
for text and code. Every failure is a DocumentError with a reason the user can act on."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from desktop.core.documents.paths import shown, shown_name
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


class SkippedFile(DocumentError):
    """A file Hearth does not read by design (a format it does not support, a pipe, a device,
    a link loop), as opposed to a document that failed."""


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


def extract(path: Path, max_bytes: int, data: bytes | None = None) -> list[Section]:
    """The sections of one file; `data` is its content when the caller has already read it
    (with read_file, so that the content hashed is the content indexed)."""
    kind = kind_of(path)
    label = shown_name(path)
    if kind is None:
        raise SkippedFile(f"{label}: skipped, {shown(path.suffix) or 'no extension'} files "
                            "are not supported (PDF, DOCX, Markdown, HTML, text and code are).")
    if data is None:
        data = read_file(path, max_bytes)
    try:
        if kind in ZIP_KINDS:
            check_zip(label, kind, data, max_bytes)
        sections = {"pdf": _pdf, "docx": _docx, "markdown": _markdown, "html": _html,
                    "code": _lines, "text": _lines}[kind](label, data)
    except DocumentError:
        raise
    except MemoryError as exc:
        raise DocumentError(f"{label}: the file needs more memory than this computer has to "
                            "read it.") from exc
    except Exception as exc:  # noqa: BLE001 - parsers raise anything on damaged files
        raise DocumentError(f"{label}: the file is damaged or not a valid {kind.upper()} "
                            f"file ({type(exc).__name__}: {shown(str(exc))}).") from exc
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise DocumentError(f"{label}: no text found in the file.")
    return sections


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                (stat.S_ISSOCK, "a socket"))


def _not_regular(label: str, mode: int) -> DocumentError:
    what = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    return SkippedFile(f"{label}: skipped, it is {what}, not a regular file (Hearth reads "
                         "only regular files).")


def _unreadable(path: Path, label: str, exc: OSError) -> DocumentError:
    if exc.errno == errno.ELOOP:
        return SkippedFile(f"{label}: skipped, it is a symbolic link loop (the link never "
                             "reaches a file).")
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return DocumentError(f"{label}: cannot be read (it is a link to a file that does not "
                             "exist).")
    return DocumentError(f"{label}: cannot be read ({shown(exc.strerror or str(exc))}).")


def _mb(size: int | float) -> str:
    return f"{size / 1e6:,.0f} MB"


def read_file(path: Path, max_bytes: int) -> bytes:
    """The content of a regular file (links resolved), never more than `max_bytes`.

    Only regular files are opened: a FIFO would block the open or the read forever and a
    device such as /dev/zero never ends. The open itself does not block (O_NONBLOCK), the
    opened file is checked again (it may have been swapped since the first check), and the
    read stops at the limit whatever the size said, since a file can grow while it is read.
    """
    label = shown_name(path)
    try:
        info = os.stat(path)  # follows links: it is the target that must be a regular file
    except OSError as exc:
        raise _unreadable(path, label, exc) from exc
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(label, info.st_mode)
    # A size of 0 is not trusted (files under /proc say 0 and have content): emptiness is
    # decided by the read below.
    if info.st_size > max_bytes:
        raise DocumentError(f"{label}: {_mb(info.st_size)} is over the {_mb(max_bytes)} limit "
                            "for one file (change it in settings).")
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _unreadable(path, label, exc) from exc
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise _not_regular(label, opened.st_mode)
        content = bytearray()
        while len(content) <= max_bytes:
            block = os.read(fd, min(1 << 20, max_bytes + 1 - len(content)))
            if not block:
                break
            content += block
    except OSError as exc:
        raise _unreadable(path, label, exc) from exc
    finally:
        os.close(fd)
    if len(content) > max_bytes:
        raise DocumentError(f"{label}: the file grew past the {_mb(max_bytes)} limit for one "
                            "file while it was being read.")
    if not content:
        raise DocumentError(f"{label}: the file is empty.")
    return bytes(content)


# Formats that are zip archives of XML parts. A parser unpacks every part into memory, so the
# sizes the archive's central directory declares are checked before anything is inflated
# (Python's zipfile never inflates a part beyond its declared size: a lying directory makes
# the part fail its CRC check, it does not make it bigger).
ZIP_KINDS = {"docx"}
# Real office documents compress their XML 5 to 30 times; deflate's ceiling is about 1,000 to
# 1, which is what zip bombs use. Small parts are not judged by ratio: they cannot expand far.
MAX_ZIP_RATIO = 200
ZIP_RATIO_FLOOR = 1_000_000
MAX_ZIP_PARTS = 10_000


def check_zip(label: str, kind: str, data: bytes, max_bytes: int) -> None:
    """Refuse an archive that would expand past the size limit or is compressed like a bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()  # reads the central directory only, inflates nothing
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise DocumentError(f"{label}: the file is damaged or not a valid {kind.upper()} file "
                            f"(not a readable zip archive: {exc}).") from exc
    if len(parts) > MAX_ZIP_PARTS:
        raise DocumentError(f"{label}: the archive holds {len(parts):,} parts, more than the "
                            f"{MAX_ZIP_PARTS:,} a real {kind.upper()} file has, so it was "
                            "refused.")
    expanded = sum(part.file_size for part in parts)
    if expanded > max_bytes:
        raise DocumentError(f"{label}: it would expand to {_mb(expanded)} when unpacked, over "
                            f"the {_mb(max_bytes)} limit for one file, so it was refused (a zip "
                            "bomb?).")
    packed = sum(part.compress_size for part in parts)
    for name, size, compressed in [*((p.filename, p.file_size, p.compress_size) for p in parts),
                                   ("the archive as a whole", expanded, packed)]:
        if size > ZIP_RATIO_FLOOR and size > MAX_ZIP_RATIO * max(compressed, 1):
            raise DocumentError(f"{label}: {shown(name)} is compressed "
                                f"{size / max(compressed, 1):,.0f} to 1, far beyond any real "
                                "document, so it was refused as a likely zip bomb.")


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _read_text(label: str, raw: bytes) -> str:
    # UTF-16/32 files (Windows Notepad's "Unicode") are recognised by their byte-order mark;
    # without one, decoding as UTF-16 would turn any even-length legacy text into CJK noise.
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is not None:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{label}: the text is damaged ({encoding} with invalid "
                                "bytes).") from exc
    elif b"\x00" in raw[:8192]:
        raise DocumentError(f"{label}: this looks like a binary file, not text.")
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
        raise DocumentError(f"{label}: this looks like a binary file, not text.")
    return text


def _lines(label: str, data: bytes) -> list[Section]:
    """Plain text and code: paragraphs (blank-line separated blocks) with their line range."""
    lines = _read_text(label, data).splitlines()
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


def _markdown(label: str, data: bytes) -> list[Section]:
    lines = _read_text(label, data).splitlines()
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


def _pdf(label: str, data: bytes) -> list[Section]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise DocumentError(f"{label}: the PDF is encrypted with a password.") from exc
        raise DocumentError(f"{label}: the PDF is damaged or not a PDF ({exc}).") from exc
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
        raise DocumentError(f"{label}: no text layer (a scanned PDF?). Hearth reads the text "
                            "of PDFs; run OCR on it first.")
    return sections


def _docx(label: str, data: bytes) -> list[Section]:
    import docx

    document = docx.Document(io.BytesIO(data))
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


# The HTML5 tree builder (lexbor) checks the stack of open elements at every start tag, so its
# time grows with tags x depth: 100,000 nested <div>s took about a minute. Pages that real
# people save stay a few dozen levels deep; anything that could be deeper than this is read by
# a flat tokenizer instead, which keeps no tree and takes time in proportion to the file.
MAX_TREE_DEPTH = 256
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr "
                  "basefont bgsound frame keygen".split())
_BLOCKS = frozenset("h1 h2 h3 h4 h5 h6 p li pre td th blockquote dd dt div section article "
                    "header footer main nav aside tr table ul ol dl figure figcaption form "
                    "address br hr".split())
_HIDDEN = frozenset("script style noscript template svg title".split())


def _depth_bound(text: str) -> int:
    """An upper bound of how deep the parsed tree can be: start tags not yet closed (a stray
    end tag closes nothing). Unclosed <p> or <li> count too, so sloppy pages also take the
    flat path, which reads them just as well."""
    open_tags: dict[str, int] = {}
    depth = deepest = 0
    for match in _TAG.finditer(text):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID or self_closing:
            continue
        if closing:
            if open_tags.get(name):
                open_tags[name] -= 1
                depth -= 1
        else:
            open_tags[name] = open_tags.get(name, 0) + 1
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_TREE_DEPTH:
                break
    return deepest


class _FlatHTML(HTMLParser):
    """Text of an HTML page from its tag stream alone: a section per block, headings kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.trail: list[str] = []
        self.text: list[str] = []
        self.hidden = 0
        self.heading_level = 0

    def flush(self) -> None:
        text = " ".join(" ".join(self.text).split())
        self.text = []
        if not text:
            return
        if self.heading_level:
            self.trail[:] = self.trail[: self.heading_level - 1] + [text]
            self.heading_level = 0
        self.sections.append(Section(text, heading=" > ".join(self.trail) or None))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += tag not in _VOID
        elif tag in _BLOCKS:
            self.flush()
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self.heading_level = int(tag[1])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text.append(data)


def _html(label: str, data: bytes) -> list[Section]:
    from selectolax.lexbor import LexborHTMLParser

    text = _read_text(label, data)
    if _depth_bound(text) > MAX_TREE_DEPTH:
        flat = _FlatHTML()
        flat.feed(text)
        flat.close()
        flat.flush()
        return flat.sections
    tree = LexborHTMLParser(text)
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
