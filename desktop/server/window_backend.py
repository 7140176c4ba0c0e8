"""The Backend of the server the window runs: it serves the model the window has loaded, with
the sampling defaults and the embedding model the app has now, read at each request (the
user may change models or settings while the server runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.core.chat.service import ModelState
from desktop.core.settings import SAMPLING_DEFAULTS
from desktop.server.common import ApiError, Backend
from desktop.server.queue import EngineQueue

if TYPE_CHECKING:
    from desktop.core.context import AppContext


class WindowBackend(Backend):
    def __init__(self, queue: EngineQueue, ctx: AppContext,
                 source: Callable[[], ModelState | None]) -> None:
        # Not the dataclass's __init__: model, sampling and embed_model are read live below.
        self.queue = queue
        self.ctx = ctx
        self._source = source
        self.started = time.time()

    @property  # type: ignore[override]
    def model(self) -> ModelState:
        model = self._source()
        if model is None:
            raise ApiError(503, "No model is loaded in Hearth: choose one in Hearth's window "
                           "(the API serves the model the window uses).")
        if model.remote is not None:
            raise ApiError(503, "Hearth's window uses a model on a remote server; the API "
                           "serves local models only: choose a local model in the window.")
        return model

    @model.setter
    def model(self, value: ModelState) -> None:
        raise AttributeError("the window's server follows the window's model")

    @property  # type: ignore[override]
    def sampling(self) -> dict[str, Any]:
        """The defaults a new chat with this model gets in the window (as `hearth serve`)."""
        entry = self.ctx.library.find(self.model.path)
        own = entry.settings if entry else {}
        return {**SAMPLING_DEFAULTS, **self.ctx.settings.get("sampling", {}),
                **{k: v for k, v in own.items() if k in SAMPLING_DEFAULTS}}

    @sampling.setter
    def sampling(self, value: dict[str, Any]) -> None:
        raise AttributeError("the window's server follows the app's settings")

    @property  # type: ignore[override]
    def embed_model(self) -> str | None:
        path = self.ctx.embed_model
        return str(Path(path).expanduser().resolve()) if path else None

    @embed_model.setter
    def embed_model(self, value: str | None) -> None:
        raise AttributeError("the window's server follows the documents' embedding model")
