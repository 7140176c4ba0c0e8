"""The main window's documents in the chat: which collections a chat answers from (the
"Answer from" menu), the passage a citation points to, and files dropped or attached on a
chat, indexed for that chat only by the app's indexer (a chip per file says how it went)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from desktop.core.chat import conversations as chats
from desktop.core.errors import HearthError

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


class ChatDocuments(QObject):
    """Owns the sources button and menu, the file chips, and the drop highlight."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def fill_sources_menu(self) -> None:
        w = self.window
        menu = w.sources_menu
        menu.clear()
        choices = chats.collection_choices(w.ctx, w.current_id)
        if not choices:
            action = menu.addAction("No collections yet: open Documents…")
            action.triggered.connect(w.open_documents)
            return
        for c in choices:
            action = menu.addAction(f"{c['name']} ({c['files']} files)")
            action.setCheckable(True)
            action.setChecked(c["attached"])
            action.toggled.connect(lambda on, cid=c["id"]: self.set_collection(cid, on))

    def set_collection(self, collection_id: int, attached: bool) -> None:
        w = self.window
        chats.set_collection(w.ctx, w.chat_list.ensure_conversation(), collection_id, attached)
        self.update_sources_button()

    def update_sources_button(self) -> None:
        w = self.window
        names = chats.source_names(w.ctx, w.current_id)
        w.sources_button.set_full_text("Answer from: " + (", ".join(names) or "none"))

    def show_source(self, source: dict) -> None:
        from desktop.ui.documents_page import PassageDialog

        PassageDialog(self.window.ctx, source, self.window).exec()

    # --- dropped files (the window's Qt drag/drop overrides call these) --------------
    def drag_entered(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self.window.drop_highlight.show_over()

    def drag_left(self) -> None:
        self.window.drop_highlight.hide()

    def dropped_paths(self, event: QDropEvent) -> list[str]:
        """The local files of a drop (accepted when there are any); the highlight goes."""
        self.window.drop_highlight.hide()
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
        return paths

    def files_dropped(self, paths: list[str]) -> None:
        self.attach_files(paths)

    def attach_files(self, paths: list[str]) -> None:
        """Files dropped on a chat are indexed for that chat only (by the app's indexer)."""
        from desktop.ui.bridge import app_signals

        w = self.window
        conversation = w.chat_list.ensure_conversation()
        collection = chats.drop_collection(w.ctx, conversation)
        chips = w.file_chips.add(paths)
        self.update_sources_button()
        signals = app_signals(w.ctx)
        job = w.ctx.indexer.submit(collection, paths, reason="chat")

        def heard(kind: str, finished: Any) -> None:
            if finished is not job or kind not in ("finished", "failed"):
                return
            signals.index_event.disconnect(heard)
            errors = list(job.state.errors) if kind == "finished" else []
            for chip in chips:
                problem = next((why for where, why in errors
                                if where == chip.path or Path(where).name == chip.name), None)
                if kind == "failed":
                    chip.set_state("not read", "error")
                elif problem is not None:
                    chip.set_state(f"not read: {problem}", "error")
                else:
                    chip.set_state("ready", "good")
            if kind == "failed":
                w.show_error(job.error or HearthError("Indexing failed."))
            self.update_sources_button()

        signals.index_event.connect(heard)
        if job.done.is_set():  # finished before we listened
            heard("finished" if job.error is None else "failed", job)
