"""The curated list of recommended models shipped in resources/ (shown first, offline too).

Each entry pins a Hub commit and the file's size and SHA-256 at that commit, so a download
from this list is checked against what Hearth shipped, not only against what the Hub says
today: a repository that is re-uploaded or tampered with cannot slip a different file in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop import paths
from desktop.core.models.quant import ModelFile, quant_label


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

    def model_file(self) -> ModelFile:
        return ModelFile(self.file, [self.file], self.size, {self.file: self.sha256},
                         quant_label(self.file), {self.file: self.size}, self.revision)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    source = path or paths.resources_dir() / "catalog.json"
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [CatalogEntry(**entry) for entry in data.get("models", [])]


def find_entry(repo: str, file: str, path: Path | None = None) -> CatalogEntry | None:
    """The catalog entry for this Hub file, if Hearth recommends it."""
    return next((e for e in load_catalog(path) if e.repo == repo and e.file == file), None)
