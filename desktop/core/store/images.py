"""Images sent to vision models: content-addressed files in <data dir>/images.

A picture is stored once as `<sha256>.<ext>` however many messages send it; messages keep the
hashes (schema 7, `messages.images_json`). A file is deleted when the last message that
references it goes (its chat deleted). Images never leave the machine: the engine worker
reads them from this folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from desktop.core.errors import HearthError

MAX_IMAGE_BYTES = 50 * 1024 * 1024
_HASH = re.compile(r"^[0-9a-f]{64}$")
# Magic bytes of the formats llama.cpp's image loader (stb_image) reads.
_FORMATS: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
]
MIME = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}


class ImageError(HearthError):
    """A file that cannot be attached as an image."""


def image_kind(data: bytes) -> str | None:
    """The file extension for these bytes, or None when they are no image we can send."""
    for magic, ext in _FORMATS:
        if data.startswith(magic):
            return ext
    return None


class ImageStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "images"

    def add_file(self, path: str | Path) -> str:
        path = Path(path).expanduser()
        try:
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise ImageError(f"{path.name} is larger than {MAX_IMAGE_BYTES // 2**20} MB; "
                                 "attach a smaller picture.")
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"The image {path.name} could not be read: "
                             f"{exc.strerror or exc}.") from exc
        return self.add_bytes(data, path.name)

    def add_bytes(self, data: bytes, name: str = "the image") -> str:
        """Store the bytes (once) and return their SHA-256, the image's id."""
        ext = image_kind(data)
        if ext is None:
            raise ImageError(f"{name} is not a PNG, JPEG, GIF or BMP image.")
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageError(f"{name} is larger than {MAX_IMAGE_BYTES // 2**20} MB.")
        digest = hashlib.sha256(data).hexdigest()
        target = self.root / f"{digest}.{ext}"
        if not target.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            with partial.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # the message that names it is durable too
            os.replace(partial, target)
        return digest

    def path(self, digest: str) -> Path | None:
        """The file of an image id, or None when it is missing (or the id is malformed)."""
        if not _HASH.match(digest):
            return None
        for _, ext in _FORMATS:
            candidate = self.root / f"{digest}.{ext}"
            if candidate.is_file():
                return candidate
        return None

    def require(self, digest: str) -> Path:
        found = self.path(digest)
        if found is None:
            raise ImageError("An image of this chat is missing from the data folder "
                             f"(images/{digest[:12]}…).")
        return found

    def read(self, digest: str) -> bytes:
        return self.require(digest).read_bytes()

    def delete_unreferenced(self, digests: Iterable[str], referenced: set[str]) -> int:
        """Delete the files of `digests` that no message references any more."""
        removed = 0
        for digest in set(digests) - referenced:
            found = self.path(digest)
            if found is not None:
                found.unlink(missing_ok=True)
                removed += 1
        return removed
