"""Chunking by tokens with overlap, preferring paragraph and heading boundaries.

Tokens are counted with a model-independent approximation (words and punctuation marks), so
chunking does not need the embedding model loaded; it tracks real tokenizers within ~20% on
English prose, and chunks stay well inside the embedding model's context either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from desktop.core.documents.extract import Section

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

DEFAULT_SIZE = 200
DEFAULT_OVERLAP = 40


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass
class Chunk:
    text: str
    page: int | None
    page_end: int | None
    line_start: int | None
    line_end: int | None
    heading: str | None
    tokens: int


def _pieces(section: Section, size: int) -> list[Section]:
    """A section larger than `size` becomes its sentences (or lines), each a unit the packer
    can place and carry over as overlap; a giant "sentence" (minified code) is hard-wrapped."""
    if count_tokens(section.text) <= size:
        return [section]
    out: list[Section] = []
    for part in (p.strip() for p in _SENTENCE.split(section.text)):
        if not part:
            continue
        if count_tokens(part) > size:
            words = part.split()
            step = max(1, size // 2)
            out.extend(Section(" ".join(words[i:i + step]), section.page, section.line_start,
                               section.line_end, section.heading)
                       for i in range(0, len(words), step))
        else:
            out.append(Section(part, section.page, section.line_start, section.line_end,
                               section.heading))
    return out


def chunk_sections(sections: list[Section], size: int = DEFAULT_SIZE,
                   overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    units = [piece for section in sections for piece in _pieces(section, size)]
    chunks: list[Chunk] = []
    window: list[Section] = []
    window_tokens = 0

    def emit() -> None:
        pages = [s.page for s in window if s.page is not None]
        starts = [s.line_start for s in window if s.line_start is not None]
        ends = [s.line_end for s in window if s.line_end is not None]
        # The chunk is filed under the heading of most of its text.
        headed = [s for s in window if s.heading]
        heading = max(headed, key=lambda s: count_tokens(s.text)).heading if headed else None
        prefix = f"{heading}\n" if heading and not window[0].text.startswith("#") else ""
        # Sentences of one paragraph join with a space, separate sections with a blank line.
        text = prefix + window[0].text
        for before, unit in zip(window, window[1:], strict=False):
            same = (before.line_start, before.page) == (unit.line_start, unit.page) and \
                before.heading == unit.heading and before.line_start is not None
            text += (" " if same else "\n\n") + unit.text
        chunks.append(Chunk(text, min(pages) if pages else None, max(pages) if pages else None,
                            min(starts) if starts else None, max(ends) if ends else None,
                            heading, count_tokens(text)))

    for unit in units:
        n = count_tokens(unit.text)
        boundary = bool(window) and unit.heading != window[-1].heading  # a new section starts
        if window and (window_tokens + n > size or (boundary and window_tokens >= size // 4)):
            emit()
            # Overlap: carry trailing units (up to `overlap` tokens) into the next chunk,
            # unless a new heading starts here: then the previous section stays behind.
            carried: list[Section] = []
            carried_tokens = 0
            if not boundary:
                for previous in reversed(window):
                    t = count_tokens(previous.text)
                    if carried_tokens + t > overlap:
                        break
                    carried.insert(0, previous)
                    carried_tokens += t
            window, window_tokens = carried, carried_tokens
        window.append(unit)
        window_tokens += n
    if window:
        emit()
    return chunks
