"""The curated list of recommended models shipped in resources/ (shown first, offline too).

Each entry pins a Hub commit and the file's size and SHA-256 at that commit, so a download
from this list is checked against what Hearth shipped, not only against what the Hub says
today: a repository that is re-uploaded or tampered with cannot slip a different file in.
A vision model's projector (`mmproj`) is pinned the same way, with its own size and hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop import paths
from desktop.core.models.quant import ModelFile, quant_label


@dataclass(frozen=True)
class CatalogFile:
    """A second file a model needs from the same repository and commit (a vision projector)."""

    file: str
    size: int
    sha256: str


@dataclass
class CatalogEntry:
    name: str
    repo: str
    file: str
    revision: str
    size: int
    sha256: str
    license: str
    kind: str  # "chat" or "embedding"
    description: str
    reasoning: bool = False  # thinks before it answers (a reasoning section in the window)
    vision: bool = False  # reads images: always comes with its projector
    mmproj: CatalogFile | None = None

    @property
    def tags(self) -> list[str]:
        """Plain words for what sets the model apart, shown beside its name in the list."""
        return [tag for tag, on in (("reasoning", self.reasoning), ("vision", self.vision)) if on]

    @property
    def download_size(self) -> int:
        """Bytes a download fetches: the model and, for a vision model, its projector."""
        return self.size + (self.mmproj.size if self.mmproj else 0)

    def model_file(self) -> ModelFile:
        # The projector travels in the same download job: the queue fetches every file of a
        # ModelFile from the pinned commit and checks each one against its own size and hash
        # before the model (the first file) enters the library with its projector paired.
        files = [self.file] + ([self.mmproj.file] if self.mmproj else [])
        sizes = {self.file: self.size}
        hashes: dict[str, str | None] = {self.file: self.sha256}
        if self.mmproj:
            sizes[self.mmproj.file] = self.mmproj.size
            hashes[self.mmproj.file] = self.mmproj.sha256
        return ModelFile(self.file, files, self.download_size, hashes, quant_label(self.file),
                         sizes, self.revision, self.mmproj.file if self.mmproj else None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entry(data: dict[str, Any]) -> CatalogEntry:
    mmproj = data.get("mmproj")
    return CatalogEntry(**{**data, "mmproj": CatalogFile(**mmproj) if mmproj else None})


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    source = path or paths.resources_dir() / "catalog.json"
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [_entry(entry) for entry in data.get("models", [])]


def find_entry(repo: str, file: str, path: Path | None = None) -> CatalogEntry | None:
    """The catalog entry for this Hub file, if Hearth recommends it."""
    return next((e for e in load_catalog(path) if e.repo == repo and e.file == file), None)
