"""The API server as the window runs it: the Settings switch, the address and key, the
indicator, and one engine shared by window chats and API clients in arrival order. The real
window offscreen, the real test model, the official `openai` client on a free loopback port."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PySide6.QtGui import QGuiApplication

from desktop.core.settings import Settings
from desktop.ui.api_status import NOT_LOOPBACK, SERVING
from desktop.ui.app_actions import open_settings
from desktop.ui.bridge import app_signals
from tests.gguf_files import with_chat_template
from tests.ui.window_fixtures import open_window, prepare  # noqa: F401 - pytest fixture

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
LOAD_MS = 180_000  # bounds for a slow machine, never waits for time
REPLY_MS = 180_000


def _enable_at_start(data_dir: Path, **extra: Any) -> None:
    settings = Settings(data_dir / "settings.json")
    settings.values.update({"api_server_enabled": True, "api_server_port": 0, **extra})
    settings.save()


def _ready(qtbot, window) -> str:  # noqa: ANN001
    """Wait for the server and the window's model (loaded because the server started)."""
    qtbot.waitUntil(lambda: window.ctx.api.running and window.service.model is not None
                    and not window.loading, timeout=LOAD_MS)
    assert not window.error_box.isVisible(), window.error_label.full_text()
    return window.ctx.api.status.url


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=REPLY_MS / 1000)


def test_the_switch_serves_with_the_key_and_stops(qtbot, open_window, data_dir: Path,  # noqa: ANN001, F811
                                                  gemma_path: Path) -> None:
    prepare(data_dir, gemma_path)
    window = open_window(data_dir)
    ctx = window.ctx
    assert not ctx.api.running and not window.api_status.isVisible()  # off by default
    signals = app_signals(ctx)

    dialog = open_settings(window, ctx)
    section = dialog.api_section
    assert not section.switch.isChecked() and section.host.text() == "127.0.0.1"
    assert not section.warning.isVisible()
    section.host.setText("0.0.0.0")  # another address: a clear warning, live
    assert section.warning.isVisible() and section.warning.full_text() == NOT_LOOPBACK
    section.host.setText("127.0.0.1")
    assert not section.warning.isVisible()
    qtbot.waitUntil(lambda: section.key.text() != "", timeout=30_000)  # the keychain answered
    key = section.key.text()
    assert key == ctx.api.key()
    section.copy_key.click()
    assert QGuiApplication.clipboard().text() == key

    section.switch.setChecked(True)
    section.port.setValue(0)  # any free port
    with qtbot.waitSignal(signals.api_changed, timeout=LOAD_MS,
                          check_params_cb=lambda event, _: event == "started"):
        dialog.save()
    url = _ready(qtbot, window)
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert window.api_status.isVisible()
    assert window.api_status.text() == f"API on {url.removeprefix('http://')}"

    models = [m.id for m in _client(url, key).models.list()]
    assert models[0] == gemma_path.stem  # the model the window has loaded
    with pytest.raises(openai.AuthenticationError):
        _client(url, "not-the-key").models.list()
    assert httpx.get(f"{url}/v1/models").status_code == 401

    dialog = open_settings(window, ctx)  # the address to copy is the one it listens on
    dialog.api_section.copy_address.click()
    assert QGuiApplication.clipboard().text() == f"{url}/v1"
    dialog.api_section.switch.setChecked(False)
    with qtbot.waitSignal(signals.api_changed, timeout=60_000,
                          check_params_cb=lambda event, _: event == "stopped"):
        dialog.save()
    assert not ctx.api.running and not window.api_status.isVisible()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})


def test_window_and_api_share_the_engine_in_arrival_order(qtbot, open_window,  # noqa: ANN001, F811
                                                          data_dir: Path,
                                                          gemma_path: Path) -> None:
    prepare(data_dir, gemma_path, max_tokens=24)
    _enable_at_start(data_dir)
    window = open_window(data_dir)
    url = _ready(qtbot, window)  # started with the app, since its switch was on
    ctx = window.ctx
    client = _client(url, ctx.api.key())
    seen: list[tuple[str, str]] = []  # what the window showed, in the order it happened
    app_signals(ctx).api_changed.connect(
        lambda event, _: seen.append((event, window.api_status.text())))
    window.text_arrived.connect(lambda piece: seen.append(("window text", piece)))

    # A system prompt long enough that its prefix is worth caching (the worker's MIN_REUSE).
    ask = [{"role": "system", "content": "You are a terse assistant for a lighthouse keeper who "
            "logs the weather, the ships that pass, and the colour of the sea at dusk."},
           {"role": "user", "content": "Name three colours of the sea."}]
    alone = client.chat.completions.create(model="gemma", messages=ask, temperature=0,
                                           max_tokens=16)
    # The window hears of it through queued signals: wait for them, then look.
    qtbot.waitUntil(lambda: "idle" in [kind for kind, _ in seen], timeout=60_000)
    assert seen == [("serving", SERVING), ("idle", window.api_status.text())]
    assert window.api_status.text().startswith("API on ")
    seen.clear()

    # Hold the engine's queue, so that the window's reply and then an API request queue up
    # behind it in a known order (no timing involved), then let them go.
    hold = ctx.api.turn("test hold")
    hold.wait()
    queue = ctx.api._queue
    window.composer.setPlainText("Hello there, what is a lighthouse?")
    window.send(window.composer.toPlainText())
    qtbot.waitUntil(lambda: queue.waiting == 1, timeout=LOAD_MS)  # the window's turn
    answers: list[Any] = []
    request = threading.Thread(target=lambda: answers.append(client.chat.completions.create(
        model="gemma", messages=ask, temperature=0, max_tokens=16)), daemon=True)
    request.start()
    qtbot.waitUntil(lambda: queue.waiting == 2, timeout=60_000)  # the API request, behind it
    hold.release()
    qtbot.waitUntil(lambda: not window.generating and bool(answers), timeout=REPLY_MS)
    request.join()

    assert not window.error_box.isVisible(), window.error_label.full_text()
    reply = window.chat_view.widgets[-1].message
    assert reply.role == "assistant" and reply.state == "done" and reply.content
    kinds = [kind for kind, _ in seen]
    # The window's reply came first (it arrived first), whole, then the API request was served.
    assert "window text" in kinds and "serving" in kinds
    assert max(i for i, k in enumerate(kinds) if k == "window text") < kinds.index("serving")
    assert ("serving", SERVING) in seen  # the window said so while it served it
    assert any("queued behind 2 request(s)" in line for line in ctx.api.log_lines)
    # And the API's answer is the one it gives alone (greedy), after the window's chat.
    assert answers[0].choices[0].message.content == alone.choices[0].message.content

    # A follow-up reuses the KV cache like a chat does.
    follow = [*ask, {"role": "assistant", "content": answers[0].choices[0].message.content},
              {"role": "user", "content": "And of the sky?"}]
    second = client.chat.completions.create(model="gemma", messages=follow, temperature=0,
                                            max_tokens=4)
    first = answers[0].usage
    assert second.usage.prompt_tokens_details.cached_tokens >= \
        first.prompt_tokens + first.completion_tokens - 1


def test_the_setting_persists_across_a_restart(qtbot, open_window, data_dir: Path,  # noqa: ANN001, F811
                                               gemma_path: Path) -> None:
    prepare(data_dir, gemma_path)
    window = open_window(data_dir)
    dialog = open_settings(window, window.ctx)
    section = dialog.api_section
    section.switch.setChecked(True)
    section.port.setValue(0)
    section.origin.setText("http://localhost:3000")
    with qtbot.waitSignal(app_signals(window.ctx).api_changed, timeout=LOAD_MS,
                          check_params_cb=lambda event, _: event == "started"):
        dialog.save()
    _ready(qtbot, window)
    window.close()
    window.ctx.close()
    assert not window.ctx.api.running  # stopped on quit

    again = open_window(data_dir)
    _ready(qtbot, again)  # on at start, as it was left
    section = open_settings(again, again.ctx).api_section
    assert section.switch.isChecked() and section.port.value() == 0
    assert section.host.text() == "127.0.0.1"
    assert section.origin.text() == "http://localhost:3000"
    assert again.api_status.isVisible()


def test_a_reasoning_model_streams_its_thinking_apart(qtbot, open_window, data_dir: Path,  # noqa: ANN001, F811
                                                      gemma_path: Path, tmp_path: Path) -> None:
    template = (TEMPLATES / "deepseek-r1-distill-qwen.jinja").read_text(encoding="utf-8")
    model = with_chat_template(gemma_path, tmp_path / "gemma-r1.gguf", template)
    prepare(data_dir, gemma_path)
    _enable_at_start(data_dir)
    window = open_window(data_dir)
    url = _ready(qtbot, window)
    client = _client(url, window.ctx.api.key())
    assert [m.id for m in client.models.list()][0] == gemma_path.stem
    # The window changes models: the API serves the new one, with its template.
    window.load_model(str(model))
    qtbot.waitUntil(lambda: not window.loading, timeout=LOAD_MS)
    assert window.service.model.path == str(model)
    assert [m.id for m in client.models.list()][0] == model.stem
    # Gemma 3 270M repeats its prompt; the template opens <think>, so the reply starts as
    # thinking until the repeated </think> closes it (as tests/e2e/test_cli_reasoning.py).
    stream = client.chat.completions.create(
        model="gemma", temperature=0, max_tokens=24, stream=True,
        messages=[{"role": "user",
                   "content": "Repeat exactly: I should add them.</think>The answer is 4."}])
    thinking, answer = [], []
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            thinking.append((delta.model_extra or {}).get("reasoning_content") or "")
            answer.append(delta.content or "")
    thought, said = "".join(thinking), "".join(answer)
    assert thought and said
    for text in (thought, said):
        assert "<think>" not in text and "</think>" not in text


def test_a_port_in_use_is_one_sentence_in_the_window(qtbot, open_window,  # noqa: ANN001, F811
                                                     data_dir: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        prepare(data_dir, None)
        _enable_at_start(data_dir, api_server_port=port)
        window = open_window(data_dir)
        qtbot.waitUntil(lambda: window.error_box.isVisible(), timeout=60_000)
        text = window.error_label.full_text()
        assert text.startswith(f"Hearth cannot serve the API on 127.0.0.1:{port}: ")
        assert "Choose another port in Settings" in text and "Traceback" not in text
        assert not window.ctx.api.running and not window.api_status.isVisible()
        assert window.ctx.settings.get("api_server_enabled")  # the switch stays as set
    finally:
        taken.close()


def test_stop_while_the_reply_waits_for_an_api_request(qtbot, open_window,  # noqa: ANN001, F811
                                                       data_dir: Path, gemma_path: Path) -> None:
    prepare(data_dir, gemma_path, max_tokens=24)
    _enable_at_start(data_dir)
    window = open_window(data_dir)
    _ready(qtbot, window)
    hold = window.ctx.api.turn("test hold")  # stands for an API request being generated
    hold.wait()
    window.send("Hello, lighthouse keeper.")
    qtbot.waitUntil(lambda: window.ctx.api._queue.waiting == 1, timeout=LOAD_MS)
    window.stop()  # Esc while the reply waits its turn
    hold.release()
    qtbot.waitUntil(lambda: not window.generating, timeout=REPLY_MS)
    messages = window.chat_view.widgets
    assert [w.message.role for w in messages] == ["user", "assistant"]
    assert messages[0].message.content == "Hello, lighthouse keeper."  # nothing lost
    assert messages[1].message.state == "stopped"
