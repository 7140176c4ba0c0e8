"""Documents in the window: a collection indexed with progress and per-file errors, a chat that
answers from it with clickable sources, and files dropped onto a chat."""

from __future__ import annotations

from pathlib import Path

from desktop.app import build_window
from desktop.core.settings import Settings
from desktop.ui.documents_page import DocumentsPage, PassageDialog
from tests.doc_corpus import write_corpus


def _prepare(data_dir: Path, model: Path, embed: Path) -> None:
    settings = Settings(data_dir / "settings.json")
    settings.values.update(starter_registered=True, last_model=str(model), embed_model=str(embed))
    settings.values["sampling"] = {**settings.get("sampling"), "temperature": 0, "max_tokens": 8}
    settings.save()


def test_collection_chat_with_sources_and_dropped_files(qtbot, data_dir: Path, tmp_path: Path,
                                                        gemma_path: Path,
                                                        embed_model_path: Path) -> None:
    _prepare(data_dir, gemma_path, embed_model_path)
    corpus = write_corpus(tmp_path / "corpus")
    (corpus["pdf"].parent / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    window = build_window(data_dir)
    qtbot.addWidget(window)
    window.show()
    try:
        page = DocumentsPage(window.ctx, window)
        qtbot.addWidget(page)
        collection = page.create_collection("Handbook")
        page.index_paths([str(corpus["pdf"].parent)], collection)
        qtbot.waitUntil(lambda: "Done:" in page.progress_label.full_text(), timeout=60_000)
        statuses = {page.documents_table.item(r, 0).text(): page.documents_table.item(r, 1).text()
                    for r in range(page.documents_table.rowCount())}
        assert statuses["handbook.pdf"] == "indexed" and statuses["broken.pdf"] == "failed"
        assert "1 with problems" in page.progress_label.full_text()

        window.set_collection(collection, True)
        assert window.sources_button.text() == "Answer from: Handbook"
        window.send("How much annual leave do staff get?")
        qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
        reply_widget = window.chat_view.widgets[-1]
        assert reply_widget.sources_label.isVisible()
        assert "handbook.pdf, page 1" in reply_widget.sources_label.text()
        source = reply_widget.message.sources[0]
        dialog = PassageDialog(window.ctx, source, window)
        qtbot.addWidget(dialog)
        assert "25 days of paid vacation" in dialog.view.toPlainText()

        window.new_chat()
        note = tmp_path / "dropped.md"
        note.write_text("# Trip\n\nThe ferry to the island leaves at 7:15 from pier 4.\n")
        from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
        from PySide6.QtGui import QDropEvent

        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(note))])
        drop = QDropEvent(QPointF(400, 300), Qt.DropAction.CopyAction, mime,
                          Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        window.dropEvent(drop)  # the file manager drops the note onto the chat
        # Its chip says when the file is read (the app's indexer reads it for this chat).
        qtbot.waitUntil(lambda: [c.state for c in window.file_chips.chips] == ["ready"],
                        timeout=60_000)
        assert "files dropped here" in window.sources_button.text()
        window.send("When does the ferry leave?")
        qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
        assert window.chat_view.widgets[-1].message.sources[0]["path"] == str(note)
    finally:
        window.close()
        window.ctx.close()


def test_watched_folder_is_reindexed_when_a_file_appears(qtbot, data_dir: Path,
                                                         tmp_path: Path) -> None:
    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha notes about herons.\n")
    page = DocumentsPage(ctx)
    qtbot.addWidget(page)
    try:
        collection = page.create_collection("Notes")
        page.index_paths([str(folder)], collection)
        qtbot.waitUntil(lambda: not page.ctx.indexer.busy, timeout=30_000)
        page.watch_box.setChecked(True)  # watch this collection's folders
        (folder / "b.md").write_text("# B\n\nBeta notes about kingfishers.\n")
        qtbot.waitUntil(lambda: len(ctx.documents.documents(collection)) == 2, timeout=30_000)
        qtbot.waitUntil(lambda: not page.ctx.indexer.busy, timeout=30_000)
        from desktop.core.documents.retrieve import search

        assert search(ctx.db, "kingfishers", [collection], k=1)[0].path.endswith("b.md")
    finally:
        ctx.close()


def test_embedding_models_stay_out_of_the_chat_picker(qtbot, data_dir: Path, gemma_path: Path,
                                                      embed_model_path: Path) -> None:
    settings = Settings(data_dir / "settings.json")
    settings.values.update(starter_registered=True, last_model=str(gemma_path))
    settings.save()
    from desktop.core.context import AppContext

    ctx = AppContext(data_dir)
    ctx.library.add(gemma_path)
    ctx.library.add(embed_model_path)
    ctx.close()
    window = build_window(data_dir)
    qtbot.addWidget(window)
    try:
        listed = [window.model_box.itemData(i) for i in range(window.model_box.count())]
        assert str(gemma_path) in listed and str(embed_model_path) not in listed
        page = DocumentsPage(window.ctx)
        qtbot.addWidget(page)
        # The installed embedding model is offered by name; no file dialog is needed.
        choices = [page.embed_box.itemData(i) for i in range(page.embed_box.count())]
        assert str(embed_model_path) in choices and str(gemma_path) not in choices
        # A chat model chosen as a file ("Other…") is refused, with a sentence.
        page.set_embed_model(str(gemma_path))
        qtbot.waitUntil(lambda: "not an embedding model" in page.embed_note.full_text(),
                        timeout=10_000)
        assert window.ctx.settings.get("embed_model") is None
        page.embed_box.activated.emit(choices.index(str(embed_model_path)))
        qtbot.waitUntil(lambda: window.ctx.settings.get("embed_model") == str(embed_model_path),
                        timeout=10_000)
        assert page.embed_box.currentData() == str(embed_model_path)
    finally:
        window.close()
        window.ctx.close()
