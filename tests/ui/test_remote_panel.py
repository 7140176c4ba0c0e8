"""The remote engine in the real window (offscreen): the "Remote server" dialog against
llama-cpp-python's own server on loopback (test connection, wrong key, save, remove), the
picker's "Remote: MODEL @ HOST" entry, a reply from the server, and the marker near the message
box that says the chat leaves this machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.engine import remote
from desktop.ui.remote_panel import REMOTE_ITEM
from tests.e2e.remote_servers import KEY, LlamaCppServer
from tests.ui.window_fixtures import open_window, prepare  # noqa: F401 - fixture

WAIT_MS = 240_000


@pytest.fixture(scope="module")
def llama(gemma_path: Path) -> Iterator[LlamaCppServer]:
    server = LlamaCppServer(gemma_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_session_keys() -> Iterator[None]:
    yield
    for url in list(remote._session_keys):
        remote.forget_api_key(url)


def test_remote_server_from_the_window(qtbot, open_window, data_dir: Path,  # noqa: F811
                                       gemma_path: Path, llama: LlamaCppServer) -> None:
    prepare(data_dir, gemma_path, max_tokens=12)
    window = open_window(data_dir)
    box = window.model_box
    window._model_chosen(box.findData(REMOTE_ITEM))  # as choosing the entry does
    dialog = window.remote_dialog
    assert dialog.isVisible()

    dialog.url.setText(llama.url)
    dialog.key.setText("wrong")
    with qtbot.waitSignal(dialog.checked, timeout=WAIT_MS) as result:
        dialog.test_button.click()
    assert result.args == [False]
    assert "refused the API key (401)" in dialog.status.full_text()

    dialog.key.setText(KEY)
    with qtbot.waitSignal(dialog.checked, timeout=WAIT_MS) as result:
        dialog.test_button.click()
    assert result.args == [True]
    assert [dialog.models.itemText(i) for i in range(dialog.models.count())] == [llama.model]
    ref = remote.remote_ref(llama.url, llama.model)
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        dialog.save_button.click()
    host = f"127.0.0.1:{llama.port}"
    assert remote.find_server(window.ctx.settings, llama.url)["model"] == llama.model
    assert "remote-test-key" not in (data_dir / "settings.json").read_text()  # never in a file
    qtbot.waitUntil(lambda: not window.loading, timeout=WAIT_MS)
    index = box.findData(ref)
    assert index >= 0 and box.itemText(index) == f"Remote: {llama.model} @ {host}"
    assert box.currentData() == ref
    assert window.remote_marker.isVisible() and host in window.remote_marker.text()
    assert host in window.model_status.full_text()
    dialog.close()

    window.send("1, 2, 3, 4, 5, 6, 7, 8,")
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    conversation = window.ctx.chats.conversation(window.current_id)
    reply = window.ctx.chats.messages(window.current_id)[-1]
    assert reply.state == "done" and reply.content, reply.error
    assert conversation.settings["remote_hosts"] == [host]
    assert window.remote_marker.isVisible() and window.remote_marker.hosts == [host]
    assert not window.ctx.engine.alive  # nothing ran on this machine

    # A new chat with a local model shows no marker; the remote chat keeps its own.
    chat_id = window.current_id
    window.load_model(str(gemma_path))
    qtbot.waitUntil(lambda: not window.loading, timeout=WAIT_MS)
    window.new_chat()
    assert not window.remote_marker.isVisible()
    window.open_conversation(chat_id)
    assert window.remote_marker.isVisible()

    # Remove the server: the picker forgets it.
    window._model_chosen(box.findData(REMOTE_ITEM))
    dialog = window.remote_dialog
    dialog.servers.setCurrentIndex(dialog.servers.findData(llama.url))
    with qtbot.waitSignal(dialog.removed, timeout=WAIT_MS):
        dialog.remove_button.click()
    assert box.findData(ref) < 0
    assert remote.saved_servers(window.ctx.settings) == []
    dialog.close()
