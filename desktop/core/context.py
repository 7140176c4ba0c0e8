"""Everything one running Hearth owns: data dir, database, settings, library, engine."""

from __future__ import annotations

from pathlib import Path

from desktop import paths
from desktop.core.documents.index import DocumentIndex, Embedder, IndexLimits
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError
from desktop.core.models.library import STARTER_LOCK, ModelLibrary
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
        self.documents = DocumentIndex(self.db)
        # Replies cut off by a crash or kill are kept and marked, never lost (DESIGN 3).
        self.interrupted_count = self.chats.mark_interrupted()
        self._worker_command = worker_command
        self._engine: EngineClient | None = None

    @property
    def models_dir(self) -> Path:
        configured = self.settings.get("models_dir")
        return Path(configured) if configured else paths.models_dir(self.data_dir)

    def set_models_dir(self, folder: Path | str) -> Path:
        """Download new models into `folder` from now on. Models already in the library stay
        where they are (they are registered by path), so nothing is moved or lost."""
        target = Path(folder).expanduser().resolve()
        probe = target / ".hearth-write-test"
        try:
            target.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise HearthError(f"Hearth cannot write to {target}: {exc.strerror or exc}. "
                              "Choose another folder.") from exc
        self.settings.set("models_dir", str(target))
        self.library.models_dir = target
        return target

    @property
    def engine(self) -> EngineClient:
        if self._engine is None:
            self._engine = EngineClient(paths.logs_dir(self.data_dir) / "engine.log",
                                        command=self._worker_command)
        return self._engine

    @property
    def embed_model(self) -> str | None:
        return self.settings.get("embed_model")

    def embedder(self) -> tuple[Embedder | None, str | None]:
        """The embedding function and model id, loading the model in the worker on first use;
        (None, None) when no embedding model is set (keyword search still works)."""
        path = self.embed_model
        if not path:
            return None, None
        if self.engine.embedding_model != path:
            if not Path(path).is_file():
                raise HearthError(f"The embedding model {path} is missing. Choose another in "
                                  "settings (the Recommended list has one).")
            self.engine.load(LoadOptions(path, n_ctx=512, n_batch=512, embedding=True))
        return self.engine.embed, Path(path).name

    def index_limits(self) -> IndexLimits:
        s = self.settings
        return IndexLimits(max_file_mb=float(s.get("doc_max_file_mb") or 100),
                           max_chunks_per_file=int(s.get("doc_max_chunks") or 20000),
                           chunk_size=int(s.get("doc_chunk_tokens") or 200),
                           chunk_overlap=int(s.get("doc_chunk_overlap") or 40))

    def ensure_starter(self) -> None:
        """First run: put the `starter` extra's tiny model into the library (if installed).
        A second caller waits for the first (the window starts this in the background while
        the self-test asks for it too) and then returns at once."""
        with STARTER_LOCK:
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
