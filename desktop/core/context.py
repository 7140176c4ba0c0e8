"""Everything one running Hearth owns: data dir, database, settings, library, engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop import paths
from desktop.core.documents.index import DocumentIndex, Embedder, IndexLimits
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError
from desktop.core.models.library import STARTER_LOCK, ModelEntry, ModelLibrary
from desktop.core.settings import Settings
from desktop.core.store.chats import ChatStore
from desktop.core.store.db import Database

if TYPE_CHECKING:
    from desktop.core.api_service import ApiService, EngineTurn
    from desktop.core.documents.indexer import Indexer
    from desktop.core.documents.watcher import FolderWatcher
    from desktop.core.models.download_queue import DownloadJob, DownloadQueue


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
        # App-level services, made on first use and kept for the app's whole life: windows
        # observe them (subscribe), they never own them (DESIGN 10).
        self._downloads: DownloadQueue | None = None
        self._indexer: Indexer | None = None
        self._watcher: FolderWatcher | None = None
        self._api: ApiService | None = None
        self.closed = False

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
        if self._downloads is not None and self._downloads.unfinished():
            # Their .part files live in the current folder; moving now would orphan them.
            raise HearthError("Finish or cancel the downloads in the Downloads tab (paused "
                              "ones too) before changing the folder.")
        self.settings.set("models_dir", str(target))
        self.library.models_dir = target
        if self._downloads is not None:
            self._downloads.models_dir = target
        return target

    # --- downloads -------------------------------------------------------------------
    @property
    def downloads(self) -> DownloadQueue:
        """The app's one download queue; unfinished downloads of the last run come back
        paused. Windows call `downloads.subscribe(fn)` to hear of every change."""
        if self._downloads is None:
            from desktop.core.models.download_queue import DownloadQueue
            from desktop.core.models.token import get_token

            self._downloads = DownloadQueue(self.models_dir, self.library, token=get_token,
                                            store=paths.downloads_path(self.data_dir))
            self._downloads.subscribe(self._download_changed)
        return self._downloads

    def has_unfinished_downloads(self) -> bool:
        """Whether downloads wait (paused from the last run, failed, queued or running)."""
        return bool(self.downloads.unfinished())

    def _download_changed(self, job: DownloadJob) -> None:
        if job.state.status != "done" or job.path is None:
            return
        entry = self.library.find(job.path)
        if entry is not None and entry.is_embedding and not self.embed_model:
            # Someone downloading an embedding model wants better document search; with none
            # chosen yet there is nothing to override.
            self.settings.set("embed_model", entry.path)

    # --- documents -------------------------------------------------------------------
    @property
    def indexer(self) -> Indexer:
        """The app's one indexer: the Documents window, files dropped on a chat and the
        folder watcher all queue their work here, one job at a time."""
        if self._indexer is None:
            from desktop.core.documents.indexer import Indexer

            self._indexer = Indexer(self.documents, self.embedder, self.index_limits)
        return self._indexer

    @property
    def watcher(self) -> FolderWatcher:
        if self._watcher is None:
            from desktop.core.documents.watcher import FolderWatcher

            self._watcher = FolderWatcher(self.documents, self.indexer)
        return self._watcher

    def start_watching(self) -> None:
        """Re-index watched collections when their folders change, until the app closes."""
        self.watcher.start()

    def embedding_models(self) -> list[ModelEntry]:
        """Installed embedding models whose file is present (choices for Documents)."""
        return [e for e in self.library.list() if e.is_embedding and e.exists]

    @staticmethod
    def check_embedding_model(path: str) -> str:
        """Read the file's header (slow on a network drive: call it off the GUI thread) and
        refuse a chat model; returns the path."""
        from desktop.core.models.gguf import read_gguf

        if not read_gguf(path).is_embedding_model:
            raise HearthError(f"{Path(path).name} is a chat model, not an embedding model. "
                              "Choose one such as nomic-embed-text (Models → Recommended).")
        return path

    # --- models ----------------------------------------------------------------------
    def may_delete_model_file(self, path: str | Path) -> bool:
        """Only files under the models folder are Hearth's to delete; a model added in place
        (another app's, the user's own) is only forgotten."""
        return Path(path).resolve().is_relative_to(self.models_dir.resolve())

    def remove_model(self, path: str, delete_file: bool) -> int:
        """Forget a model, and delete its file when asked and allowed; returns bytes freed."""
        self.library.remove(path)
        file = Path(path)
        if not (delete_file and self.may_delete_model_file(file) and file.is_file()):
            return 0
        freed = file.stat().st_size
        file.unlink()
        return freed

    def app_defaults(self) -> dict[str, Any]:
        """Context, GPU layers and sampling every model gets unless it has its own."""
        layers = self.settings.get("n_gpu_layers")
        return {"n_ctx": int(self.settings.get("n_ctx") or 4096),
                "n_gpu_layers": -1 if layers is None else layers,
                **self.settings.get("sampling", {})}

    @property
    def engine(self) -> EngineClient:
        if self._engine is None:
            self._engine = EngineClient(paths.logs_dir(self.data_dir) / "engine.log",
                                        command=self._worker_command)
        return self._engine

    # --- the API server ----------------------------------------------------------------
    @property
    def api(self) -> ApiService:
        """The window's API server (off until its setting is on; `api.sync()` applies it)."""
        if self._api is None:
            from desktop.core.api_service import ApiService

            self._api = ApiService(self)
        return self._api

    def engine_turn(self, label: str | None) -> EngineTurn:
        """A chat reply's place in the API server's queue, so the window and API clients get
        the one engine in arrival order; free when the server is off or `label` is None (a
        remote model does not use the engine)."""
        from desktop.core.api_service import EngineTurn

        if self._api is None or label is None:
            return EngineTurn()
        return self._api.turn(label)

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
        # Events the services queued for windows may still arrive; they check this first.
        self.closed = True
        if self._api is not None:
            self._api.close()  # before the engine: it cancels the request being served
        if self._watcher is not None:
            self._watcher.stop()
        if self._indexer is not None:
            self._indexer.close()
        if self._downloads is not None:
            self._downloads.close()
        if self._engine is not None:
            self._engine.shutdown()
        self.db.close()
