"""Dropping files from the system file manager onto a Hearth window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FileDropTarget:
    """Mixin for a QWidget: calls `files_dropped(paths)` with the local files dropped on it."""

    files_dropped: Callable[[list[str]], None]

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped(paths)
