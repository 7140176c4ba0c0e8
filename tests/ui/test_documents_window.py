"""The Documents window: the installed embedding model offered by name, files shown as they
are indexed, an honest rate, one app-wide indexer, and a window usable at 800x600."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.core.documents.passages import passage_with_neighbours
from desktop.ui import theme
from desktop.ui.documents_page import OTHER, DocumentsPage
from tests.ui.test_models_window import LONG, accessible_name, assert_readable, controls


@pytest.fixture
def ctx(data_dir: Path) -> Iterator[AppContext]:
    context = AppContext(data_dir)
    context.settings.set("starter_registered", True)
    yield context
    context.close()


def _notes(folder: Path, count: int) -> Path:
    folder.mkdir()
    for n in range(count):
        (folder / f"note-{n}.md").write_text(f"# Note {n}\n\nHerons and kingfishers, part {n}.\n")
    return folder


def test_installed_embedding_model_is_offered_by_name(qtbot, ctx: AppContext,
                                                      gemma_path: Path,
                                                      embed_model_path: Path) -> None:
    ctx.library.add(gemma_path)
    ctx.library.add(embed_model_path)
    page = DocumentsPage(ctx)
    qtbot.addWidget(page)
    labels = [page.embed_box.itemText(i) for i in range(page.embed_box.count())]
    data = [page.embed_box.itemData(i) for i in range(page.embed_box.count())]
    assert data[-1] == OTHER and labels[-1] == "Other GGUF file…"  # the file dialog: last
    assert str(embed_model_path) in data and str(gemma_path) not in data
    assert "installed embedding model" in page.embed_note.full_text()
    page.embed_box.activated.emit(data.index(str(embed_model_path)))
    qtbot.waitUntil(lambda: ctx.embed_model == str(embed_model_path), timeout=10_000)
    assert page.embed_box.toolTip() == str(embed_model_path)  # the whole path, not cut


def test_rows_appear_while_indexing_and_the_rate_waits_for_data(qtbot, ctx: AppContext,
                                                                tmp_path: Path) -> None:
    folder = _notes(tmp_path / "notes", 3)
    gates = [threading.Event() for _ in range(3)]
    calls: list[int] = []

    def gated_embedder(texts: list[str]) -> list[list[float]]:
        # Holds each file inside indexing until the test lets it go: what the window shows
        # mid-run is checked without racing a fast machine.
        gate = gates[len(calls)]
        calls.append(1)
        gate.wait(30)
        return [[1.0, 0.0, 0.0] for _ in texts]

    ctx.indexer._embedder = lambda: (gated_embedder, "gated")  # a real function, held
    page = DocumentsPage(ctx)
    qtbot.addWidget(page)
    collection = page.create_collection("Notes")
    job = page.index_paths([str(folder)], collection)
    assert job is not None
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: "starting…" in page.progress_label.full_text(), timeout=5000)
    assert "0 passages/s" not in page.progress_label.full_text()
    assert page.documents_table.rowCount() == 0
    gates[0].set()  # the first file goes into the index; the second is held
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=10_000)
    qtbot.waitUntil(lambda: page.documents_table.rowCount() == 1, timeout=5000)
    assert job.status == "running"  # shown before the run ends
    assert page.documents_table.item(0, 0).text() == "note-0.md"
    qtbot.waitUntil(lambda: "passages/s" in page.progress_label.full_text(), timeout=5000)
    gates[1].set()
    gates[2].set()
    qtbot.waitUntil(lambda: "Done: 3 files indexed" in page.progress_label.full_text(),
                    timeout=10_000)
    assert page.documents_table.rowCount() == 3 and page.progress.isHidden()


def test_one_indexer_for_the_app_and_passages_from_core(qtbot, ctx: AppContext,
                                                        tmp_path: Path) -> None:
    folder = _notes(tmp_path / "notes", 2)
    first, second = DocumentsPage(ctx), DocumentsPage(ctx)
    qtbot.addWidget(first)
    qtbot.addWidget(second)
    collection = first.create_collection("Notes")
    # A job from outside both windows (as the folder watcher submits one).
    job = ctx.indexer.submit(collection, [str(folder)], reason="watch")
    assert ctx.indexer.busy and ctx.indexer.busy_with(collection)
    qtbot.waitUntil(lambda: "Done: 2 files indexed" in first.progress_label.full_text(),
                    timeout=30_000)
    assert job.status == "done" and not ctx.indexer.busy
    # Both windows heard of the run through the app's signals.
    second.collection_list.setCurrentRow(0)
    qtbot.waitUntil(lambda: second.documents_table.rowCount() == 2, timeout=5000)
    chunk_id = ctx.db.query("SELECT id FROM chunks ORDER BY id LIMIT 1")[0]["id"]
    passages = passage_with_neighbours(ctx.documents, int(chunk_id))
    assert [p.cited for p in passages][0] is True


def test_window_fits_800x600_is_readable_and_named(qtbot, ctx: AppContext, tmp_path: Path,
                                                    ) -> None:
    page = DocumentsPage(ctx)
    qtbot.addWidget(page)
    page.show()
    hint = page.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600, hint
    page.resize(800, 600)
    qtbot.waitUntil(lambda: page.width() == 800)
    page.create_collection("A collection with a very long name " * 4)
    page.progress_label.show_text(LONG, "error")
    page.embed_note.show_text(LONG)
    assert page.size().width() == 800 and page.size().height() == 600
    after = page.minimumSizeHint()
    assert after.width() <= 800 and after.height() <= 600, after
    assert [type(w).__name__ for w in controls(page) if not accessible_name(w)] == []
    try:
        for mode in ("light", "dark"):
            theme.apply_theme(mode)
            page.refresh()
            assert_readable(page)
    finally:
        theme.apply_theme("system")
