"""Everything one running Hearth owns: data dir, database, settings, library, engine."""

from __future__ import annotations

from pathlib import Path

from desktop import paths
from desktop.core.engine.client import EngineClient
from desktop.core.models.library import ModelLibrary
from desktop.core.settings import Settings
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database


class AppContext:
    def __init__(self, data_dir: Path, *, worker_command: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.db = Database(paths.database_path(self.data_dir))
        self.chats = ChatStore(self.db)
        self.settings = Settings(paths.settings_path(self.data_dir))
        self.library = ModelLibrary(self.db, self.models_dir)
        # Replies cut off by a crash or kill are kept and marked, never lost (DESIGN 3).
        self.interrupted_count = self.chats.mark_interrupted()
        self._worker_command = worker_command
        self._engine: EngineClient | None = None

    @property
    def models_dir(self) -> Path:
        configured = self.settings.get("models_dir")
        return Path(configured) if configured else paths.models_dir(self.data_dir)

    @property
    def engine(self) -> EngineClient:
        if self._engine is None:
            self._engine = EngineClient(paths.logs_dir(self.data_dir) / "engine.log",
                                        command=self._worker_command)
        return self._engine

    def ensure_starter(self) -> None:
        """First run: put the `starter` extra's tiny model into the library (if installed)."""
        if self.settings.get("starter_registered"):
            return
        entry = self.library.register_starter()
        if entry is not None:
            if not self.settings.get("last_model"):
                self.settings.values["last_model"] = entry.path
            self.settings.set("starter_registered", True)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
        self.db.close()
