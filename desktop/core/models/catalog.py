"""The curated list of recommended models shipped in resources/ (shown first, offline too)."""

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
    size: int
    sha256: str | None
    license: str
    kind: str
    description: str

    def model_file(self) -> ModelFile:
        return ModelFile(self.file, [self.file], self.size, {self.file: self.sha256},
                         quant_label(self.file), {self.file: self.size})

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    source = path or paths.resources_dir() / "catalog.json"
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [CatalogEntry(**entry) for entry in data.get("models", [])]
