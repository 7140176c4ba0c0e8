"""File names that are not valid UTF-8, stored in SQLite and shown to people.

On POSIX a file name is bytes. Python hands an undecodable byte to us as a lone surrogate
(U+DC80..U+DCFF, PEP 383 "surrogateescape"), but SQLite TEXT must be valid UTF-8, so such a
path cannot be stored as it is. In the database each of those surrogates becomes a private-use
character (U+EF80..U+EFFF, the OPTU-8 convention): the mapping is one character for one, so
"/" and every folder prefix stay intact (folder removal by prefix and "is this under that
root" keep working), and it reverses exactly, so a stored root can be walked again.
People see the undecodable bytes as \\xNN, which says honestly what the name contains.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePath

_ESCAPED = re.compile("[\udc80-\udcff]")
_STORED = re.compile("[\uef80-\uefff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_db(path: str | os.PathLike[str]) -> str:
    """The form of a path kept in the database: always valid UTF-8, reversible by from_db."""
    text = _ESCAPED.sub(lambda m: chr(ord(m.group()) - 0xDC80 + 0xEF80), os.fspath(path))
    # Any other lone surrogate (a damaged NTFS name on Windows) has no byte to stand for;
    # it is written as \\uXXXX so the row can at least be stored and shown.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def from_db(text: str) -> str:
    """The real path (with surrogateescape characters) of a path stored by to_db."""
    if os.name == "nt":  # Windows names are UTF-16: to_db never maps anything there
        return text
    return _STORED.sub(lambda m: chr(ord(m.group()) - 0xEF80 + 0xDC80), text)


def shown(path: str | os.PathLike[str]) -> str:
    """A path as people read it (messages, the CLI): undecodable bytes appear as \\xNN."""
    text = from_db(os.fspath(path))
    if os.name != "nt" and _ESCAPED.search(text):
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shown_name(path: str | os.PathLike[str]) -> str:
    return shown(PurePath(os.fspath(path)).name)
