"""The Models window against the fake Hub: search, fit labels, a download while the GUI runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.context import AppContext
from desktop.ui.models_installed import COLUMNS
from desktop.ui.models_page import ModelsPage
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf

GEMMA_REPO = "google/gemma-3-270m-GGUF"
GEMMA_FILE = "gemma-3-270m-Q4_K_M.gguf"


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch, gemma_path: Path, tmp_path: Path):  # noqa: ANN201
    server = FakeHub()
    server.add_file(GEMMA_REPO, GEMMA_FILE, gemma_path,
                    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
    server.add_file(GEMMA_REPO, "gemma-3-270m-F16.gguf", write_small_gguf(tmp_path / "s.gguf"))
    server.throttle_bps = 200_000_000  # long enough to watch the GUI during the download
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    yield server
    server.stop()


@pytest.fixture
def page(qtbot, data_dir: Path):  # noqa: ANN001, ANN201
    ctx = AppContext(data_dir)
    ctx.settings.set("starter_registered", True)  # saved: a window opened later sees it
    widget = ModelsPage(ctx)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    ctx.close()


def _add(qtbot, page: ModelsPage, path: Path) -> None:  # noqa: ANN001
    """Add a file the way the window does (its header is read off the GUI thread)."""
    page.installed.add_paths([str(path)])
    qtbot.waitUntil(lambda: "Added" in page.installed.status.full_text(), timeout=10_000)


def test_recommended_list_works_offline(page: ModelsPage) -> None:
    names = [page.recommended.table.item(r, 0).text() for r in range(page.recommended.table.rowCount())]
    assert "nomic-embed-text v1.5" in names
    # Reasoning and vision models carry a small tag beside their name.
    assert "Qwen3 8B  [reasoning]" in names and "Gemma 3 12B  [vision]" in names
    assert "Qwen3.5 4B  [reasoning]  [vision]" in names
    fits = {page.recommended.table.item(r, 3).text() for r in range(page.recommended.table.rowCount())}
    assert {page.recommended.table.item(r, 2).text() for r in range(len(names))} == {""}
    assert fits <= {"Runs fully on GPU", "Partly on GPU", "CPU only, fits in RAM", "Too large"}


def test_recommended_models_on_disk_are_ticked(qtbot, page: ModelsPage, tmp_path: Path) -> None:
    row = next(r for r, e in enumerate(page.recommended.catalog) if e.kind == "embedding")
    entry = page.recommended.catalog[row]
    # Same name and size as the recommended file (sparse: no real 146 MB written).
    copy = write_small_gguf(tmp_path / entry.file)
    with copy.open("r+b") as handle:
        handle.truncate(entry.size)
    _add(qtbot, page, copy)
    assert page.recommended.table.item(row, 2).text() == "✓ yes"
    assert all(page.recommended.table.item(r, 2).text() == ""
               for r in range(page.recommended.table.rowCount()) if r != row)
    page.recommended.table.selectRow(row)
    page.recommended.download_selected()  # no second copy of what is already here
    assert page.queue.jobs == [] and "already on this computer" in page.recommended.status.full_text()


def test_search_list_and_download_while_the_window_responds(qtbot, page: ModelsPage,
                                                            hub_server: FakeHub) -> None:
    page.search_tab.search_box.setText("gemma")
    page.search_tab.search()
    qtbot.waitUntil(lambda: page.search_tab.results.rowCount() == 1, timeout=10_000)
    page.search_tab.results.selectRow(0)
    qtbot.waitUntil(lambda: page.search_tab.files.rowCount() == 2, timeout=10_000)
    names = [page.search_tab.files.item(r, 0).text() for r in range(2)]
    assert any(n.startswith("★ ") for n in names)  # the recommended file for this machine
    row = next(r for r in range(2) if GEMMA_FILE in page.search_tab.files.item(r, 0).text())
    assert page.search_tab.files.item(row, 1).text() == "Q4_K_M"
    assert page.search_tab.files.item(row, 3).toolTip().startswith(("CPU only", "Runs fully", "Partly"))

    # The window stays live during the download: its progress bar, drawn by a timer on the
    # main thread, shows the file part-way while the (slowed) download thread still runs.
    hub_server.throttle_bps = 2_000_000  # ~2 minutes for the file: it cannot finish first
    page.search_tab.files.selectRow(row)
    page.search_tab.download_selected()
    job = page.queue.jobs[0]

    def shows_progress() -> bool:
        bar = page.downloads.table.cellWidget(0, 1)
        return bar is not None and 0 < bar.value() < 1000 and job.state.status == "downloading"

    qtbot.waitUntil(shows_progress, timeout=60_000)
    hub_server.throttle_bps = 0
    qtbot.waitUntil(lambda: job.state.status == "done", timeout=60_000)
    qtbot.waitUntil(lambda: page.installed.table.rowCount() == 1, timeout=5000)
    assert page.installed.table.item(0, COLUMNS["Quant"]).text() == "Q4_K_M"
    assert page.installed.table.item(0, COLUMNS["Chat template"]).text() == "no (base model)"
    assert page.downloads.table.cellWidget(0, 1).value() == 1000


def test_remove_deletes_only_downloaded_files(qtbot, page: ModelsPage, gemma_path: Path,
                                              tmp_path: Path) -> None:
    outside = write_small_gguf(tmp_path / "mine.gguf")
    _add(qtbot, page, outside)
    entry = page.ctx.library.list()[0]
    page.installed.remove_entry(entry, delete_file=False)
    assert outside.exists() and page.ctx.library.list() == []
    inside = page.ctx.models_dir / "a" / "b" / "x.gguf"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(outside.read_bytes())
    _add(qtbot, page, inside)
    page.installed.remove_entry(page.ctx.library.list()[0], delete_file=True)
    assert not inside.exists()


def test_recommended_download_must_match_the_shipped_hash(qtbot, page: ModelsPage,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    # The Hub serves some other file under the first recommended model's name: the download
    # fetches the pinned commit, is refused, and nothing enters the library.
    entry = page.recommended.catalog[0]
    server = FakeHub()
    server.add_file(entry.repo, entry.file, write_small_gguf(tmp_path / "other.gguf"))
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    try:
        page.recommended.table.selectRow(0)
        page.recommended.download_selected()
        job = page.queue.jobs[0]
        qtbot.waitUntil(lambda: job.state.status == "failed", timeout=30_000)
        qtbot.waitUntil(lambda: "changed since it was listed" in page.downloads.status.full_text(),
                        timeout=5000)  # told through a queued signal from the download thread
        assert "changed since it was listed" in page.downloads.status.full_text()
        assert [p for _, p, _ in server.requests] == [
            f"/{entry.repo}/resolve/{entry.revision}/{entry.file}"]
        assert page.ctx.library.list() == [] and page.installed.table.rowCount() == 0
    finally:
        server.stop()


def test_library_folder_can_be_changed(page: ModelsPage, tmp_path: Path) -> None:
    page.installed.set_models_folder(str(tmp_path / "elsewhere"))
    target = (tmp_path / "elsewhere").resolve()
    assert page.ctx.models_dir == target and page.queue.models_dir == target
    assert page.ctx.settings.get("models_dir") == str(target)
    assert str(target) in page.installed.folder_label.text()
    blocker = tmp_path / "a-file"  # a folder inside a file cannot be made, even by root
    blocker.write_text("x")
    page.installed.set_models_folder(str(blocker / "models"))
    assert "cannot write" in page.installed.status.full_text() and page.ctx.models_dir == target


def test_paused_download_is_back_after_a_restart(qtbot, page: ModelsPage, hub_server: FakeHub,
                                                 data_dir: Path) -> None:
    from desktop.app import build_window
    from desktop.core.models import hub

    hub_server.throttle_bps = 30_000_000
    model = next(m for m in hub.repo_files(GEMMA_REPO).models if m.name == GEMMA_FILE)
    job = page.start_download(GEMMA_REPO, model)
    qtbot.waitUntil(lambda: job.state.done > 10_000_000, timeout=30_000)
    page.downloads.table.selectRow(0)
    page.downloads.pause()
    qtbot.waitUntil(lambda: job.state.status == "paused", timeout=10_000)
    page.close()

    window = build_window(data_dir)  # the app starts again
    qtbot.addWidget(window)
    try:
        assert window.models_button.text() == "Models… (paused downloads)"
        hub_server.throttle_bps = 0
        window.open_models()
        again = window.models_page
        assert window.models_button.text() == "Models…"
        assert again.tabs.currentIndex() == 3 and "press Resume" in again.downloads.status.full_text()
        assert again.downloads.table.item(0, 3).text().startswith("Paused: ")
        assert again.downloads.table.item(0, 3).text().endswith(" kept")  # the bytes are there
        restored = again.queue.jobs[0]
        again.downloads.table.selectRow(0)
        again.downloads.resume()
        qtbot.waitUntil(lambda: restored.state.status == "done", timeout=60_000)
        qtbot.waitUntil(lambda: any(GEMMA_REPO in again.installed.table.item(r, COLUMNS["Path"]).text()
                                    for r in range(again.installed.table.rowCount())), timeout=5000)
        assert not (data_dir / "models" / GEMMA_REPO / (GEMMA_FILE + ".part")).exists()
    finally:
        window.close()
        window.ctx.close()


def test_downloaded_embedding_model_is_used_for_documents(qtbot, page: ModelsPage,
                                                          hub_server: FakeHub,
                                                          embed_model_path: Path) -> None:
    from desktop.core.models import hub

    repo = "acme/MiniLM-GGUF"
    hub_server.add_file(repo, embed_model_path.name, embed_model_path)
    [model] = hub.repo_files(repo).models
    job = page.start_download(repo, model)
    qtbot.waitUntil(lambda: job.state.status == "done", timeout=30_000)
    qtbot.waitUntil(lambda: "document search" in page.downloads.status.full_text(), timeout=5000)
    assert page.ctx.settings.get("embed_model") == str(job.path)
    # The Installed tab hears of the new model through its own queued signal.
    qtbot.waitUntil(lambda: any(page.installed.table.item(r, COLUMNS["Path"]).text()
                                == str(job.path)
                                for r in range(page.installed.table.rowCount())), timeout=5000)
    row = next(r for r in range(page.installed.table.rowCount())
               if page.installed.table.item(r, COLUMNS["Path"]).text() == str(job.path))
    assert page.installed.table.item(row, COLUMNS["Chat template"]).text() == "embedding model"


def test_model_defaults_keep_gpu_auto_and_store_only_changes(qtbot, page: ModelsPage,
                                                             gemma_path: Path) -> None:
    from desktop.ui.chat_settings import ChatSettingsDialog

    _add(qtbot, page, gemma_path)
    entry = page.ctx.library.find(gemma_path)
    dialog = ChatSettingsDialog("", {**page.ctx.app_defaults(), **entry.settings}, page,
                                model_fields=True)
    assert dialog.inputs["n_gpu_layers"].value() == -1  # auto, not "0 = CPU only"
    assert dialog.inputs["n_gpu_layers"].text() == "Auto (what free VRAM holds)"
    system, values = dialog.values()
    page.installed.save_defaults(entry, system, values)  # OK on an untouched dialog changes nothing
    assert page.ctx.library.find(gemma_path).settings == {}
    dialog.inputs["n_ctx"].setValue(2048)
    dialog.inputs["temperature"].setValue(0.2)
    dialog.system_prompt.setPlainText("Be brief.")
    page.installed.save_defaults(entry, *dialog.values())
    assert page.ctx.library.find(gemma_path).settings == {
        "n_ctx": 2048, "temperature": 0.2, "system_prompt": "Be brief."}


def test_gated_download_goes_on_once_the_token_is_given(qtbot, page: ModelsPage,
                                                        hub_server: FakeHub,
                                                        tmp_path: Path) -> None:
    import keyring
    from keyring.backends import fail

    from desktop.core.models import hub
    from desktop.core.models.token import forget_token

    keyring.set_keyring(fail.Keyring())  # like a machine without a keychain: never a real one
    hub_server.add_file("acme/secret-GGUF", "secret-Q4_0.gguf",
                        write_small_gguf(tmp_path / "secret.gguf"))
    hub_server.gated["acme/secret-GGUF"] = "hf_test_token"
    hub_server.throttle_bps = 0
    try:
        [model] = hub.repo_files("acme/secret-GGUF", token="hf_test_token").models
        job = page.start_download("acme/secret-GGUF", model)
        qtbot.waitUntil(lambda: job.state.status == "failed", timeout=30_000)
        # The window hears of it through a queued signal from the download thread.
        qtbot.waitUntil(lambda: "Hugging Face token…" in page.downloads.status.full_text(), timeout=5000)
        assert job.state.needs_token and "Hugging Face token…" in page.downloads.status.full_text()
        page.store_token("hf_test_token")
        qtbot.waitUntil(lambda: job.state.status == "done", timeout=30_000)
        assert job.path is not None and job.path.is_file()
    finally:
        forget_token()
