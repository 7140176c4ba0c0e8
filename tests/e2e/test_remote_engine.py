"""The remote engine against real OpenAI-compatible servers on loopback: llama-cpp-python's own
server (nobody here wrote it) and Hearth's `serve`, both with the real test model.

Chat through the chat service (streaming, cancel mid-stream, usage and timings), documents
over a remote model (retrieval local, excerpts in the prompt, sources kept), the marking of
the chat and its exports with the host, a wrong key (401), a dead server and a connection that
drops mid-reply: one sentence each, and what was written is kept. The CLI is run as users run
it (`python main.py ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.engine import remote
from desktop.core.errors import EngineError
from tests.e2e.remote_servers import (
    KEY,
    REPO,
    HearthServer,
    LlamaCppServer,
    LoopbackServer,
    free_port,
)

# The Gemma base model under llama-cpp-python's Gemma chat format goes on counting.
COUNT = "1, 2, 3, 4, 5, 6, 7, 8,"
SAMPLING = {"temperature": 0.0, "seed": 7, "max_tokens": 48}
FACT = ("The lighthouse on Quillby Point was painted ultramarine in 1931. Its keeper's cat "
        "was called Marmalade Quince and slept on the lamp gallery.")


@pytest.fixture(scope="module")
def llama(gemma_path: Path) -> Iterator[LlamaCppServer]:
    server = LlamaCppServer(gemma_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path) -> Iterator[HearthServer]:
    server = HearthServer(tmp_path_factory.mktemp("hearth-serve"), gemma_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["llama-cpp-python", "hearth-serve"])
def server(request: pytest.FixtureRequest) -> LoopbackServer:
    return request.getfixturevalue("llama" if request.param == "llama-cpp-python" else "hearth")


@pytest.fixture(autouse=True)
def no_session_keys() -> Iterator[None]:
    """Keys given in one test must not answer for another (they live for the process)."""
    yield
    remote._session_keys.clear()


@pytest.fixture
def ctx(data_dir: Path) -> Iterator[AppContext]:
    context = AppContext(data_dir)
    try:
        yield context
    finally:
        context.close()


def _cli(data_dir: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, **(env or {})})


def _remote_chat(ctx: AppContext, server: LoopbackServer) -> tuple[ChatService, int]:
    remote.use_api_key(server.url, server.key)
    service = ChatService(ctx)
    model = service.load_model(remote.remote_ref(server.url, server.model))
    assert model.remote is not None and not model.is_base_model
    return service, service.new_conversation(settings=dict(SAMPLING)).id


def test_chat_streams_from_a_remote_server(ctx: AppContext, server: LoopbackServer) -> None:
    assert [m["id"] for m in remote.list_models(server.url, server.key)] == [server.model]
    service, conversation_id = _remote_chat(ctx, server)
    pieces: list[str] = []
    reply = service.send(conversation_id, COUNT, on_text=pieces.append)
    assert reply.state == "done", reply.error
    assert len(pieces) > 1 and reply.content == "".join(pieces) and reply.content.strip()
    assert reply.stop_reason in ("stop", "length")
    assert reply.completion_tokens and reply.completion_tokens > 1
    assert reply.ttft_s is not None and reply.ttft_s > 0 and reply.tokens_per_s
    conversation = ctx.chats.conversation(conversation_id)
    assert conversation.model_path == remote.remote_ref(server.url, server.model)
    assert conversation.settings["remote_hosts"] == [f"127.0.0.1:{server.port}"]
    assert ctx.settings.get("last_model") == conversation.model_path
    assert not ctx.engine.alive  # nothing was loaded on this machine


def test_stop_mid_stream_keeps_the_partial_reply(ctx: AppContext, server: LoopbackServer) -> None:
    service, conversation_id = _remote_chat(ctx, server)
    ctx.chats.update_conversation(conversation_id, settings={**SAMPLING, "max_tokens": 400})
    pieces: list[str] = []

    def first_piece_stops(piece: str) -> None:
        pieces.append(piece)
        service.stop()  # as the Stop button does, from the streaming callback

    reply = service.send(conversation_id, COUNT, on_text=first_piece_stops)
    assert reply.state == "stopped" and reply.stop_reason == "cancelled"
    assert reply.content == "".join(pieces) and reply.content
    assert (reply.completion_tokens or 0) < 400
    # The server is free again: the next turn is answered in full (a short one: a loaded
    # machine writes a few tokens a second).
    own = ctx.chats.conversation(conversation_id).settings
    ctx.chats.update_conversation(conversation_id, settings={**own, "max_tokens": 12})
    again = service.send(conversation_id, "9, 10, 11,", on_text=None)
    assert again.state == "done" and again.content


def test_documents_over_a_remote_model(ctx: AppContext, llama: LlamaCppServer,
                                       tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "lighthouse.txt").write_text(FACT + "\n", encoding="utf-8")
    (notes / "garden.txt").write_text("Tomatoes need six hours of sun a day.\n", encoding="utf-8")
    collection = ctx.documents.create_collection("notes")
    ctx.documents.add_paths(collection, [notes])  # keyword search: no embedding model
    service, conversation_id = _remote_chat(ctx, llama)
    ctx.documents.attach(conversation_id, collection)
    reply = service.send(conversation_id, "What was the keeper's cat called at Quillby Point?")
    assert reply.state == "done", reply.error
    assert reply.sources and reply.sources[0]["path"].endswith("lighthouse.txt")
    # What went to the server: messages, the excerpt inside the newest user turn.
    sent = service.build_prompt(ctx.chats.conversation(conversation_id), service.model,
                                service.sampling(ctx.chats.conversation(conversation_id)))
    users = [m for m in sent if m["role"] == "user"]
    assert "Marmalade Quince" in users[-1]["content"] and "[1]" in users[-1]["content"]
    assert all(set(m) == {"role", "content"} for m in sent)
    assert not ctx.engine.alive  # retrieval ran here without a local model


def test_export_marks_the_chat_as_leaving_this_machine(data_dir: Path,
                                                       llama: LlamaCppServer) -> None:
    env = {"REMOTE_KEY": KEY}
    done = _cli(data_dir, "chat", "--remote", llama.url, "--remote-model", llama.model,
                "--api-key-env", "REMOTE_KEY", "--max-tokens", "8", "--json", COUNT, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    host = f"127.0.0.1:{llama.port}"
    assert answer["remote_host"] == host and answer["state"] == "done"
    assert f"sent to the remote server at {host}" in done.stderr  # said before sending
    markdown = _cli(data_dir, "history", "export", str(answer["conversation_id"]))
    assert f"Left this machine: sent to a remote server at {host}." in markdown.stdout
    exported = json.loads(_cli(data_dir, "history", "export", str(answer["conversation_id"]),
                               "--format", "json").stdout)
    assert exported["remote_hosts"] == [host]
    assert exported["model_path"] == remote.remote_ref(llama.url, llama.model)


def test_wrong_key_is_one_sentence_and_the_message_is_kept(data_dir: Path,
                                                           llama: LlamaCppServer) -> None:
    result = _cli(data_dir, "chat", "--remote", llama.url, "--remote-model", llama.model,
                  "--api-key-env", "REMOTE_KEY", "Are you there?", env={"REMOTE_KEY": "wrong"})
    assert result.returncode == 1
    assert f"hearth: The remote server at 127.0.0.1:{llama.port} refused the API key (401)" \
        in result.stderr
    assert "Traceback" not in result.stderr
    shown = json.loads(_cli(data_dir, "history", "show", "1", "--json").stdout)
    assert [m["role"] for m in shown["messages"]][:1] == ["user"]
    assert shown["messages"][0]["content"] == "Are you there?"
    assert shown["remote_hosts"] == [f"127.0.0.1:{llama.port}"]


def test_dead_server_is_one_sentence(data_dir: Path) -> None:
    port = free_port()
    result = _cli(data_dir, "chat", "--remote", f"http://127.0.0.1:{port}", "--remote-model",
                  "big", "Hello")
    assert result.returncode == 1
    assert (f"hearth: Could not connect to the remote server at 127.0.0.1:{port} while writing "
            "the reply") in result.stderr
    assert "Traceback" not in result.stderr
    shown = json.loads(_cli(data_dir, "history", "show", "1", "--json").stdout)
    assert shown["messages"][0]["content"] == "Hello"
    # `serve` shares local models only: the remote model used last is refused, not forwarded.
    served = _cli(data_dir, "serve", "--port", "0", env={"HEARTH_API_KEY": KEY})
    assert served.returncode == 1 and "on a remote server" in served.stderr


def test_a_dropped_connection_keeps_the_partial_reply(ctx: AppContext, gemma_path: Path) -> None:
    own = LlamaCppServer(gemma_path, alias="doomed")
    try:
        service, conversation_id = _remote_chat(ctx, own)
        ctx.chats.update_conversation(conversation_id, settings={**SAMPLING, "max_tokens": 400})
        pieces: list[str] = []

        def server_dies(piece: str) -> None:
            pieces.append(piece)
            if own.proc.poll() is None:
                own.proc.kill()
                own.proc.wait()

        with pytest.raises(EngineError) as caught:
            service.send(conversation_id, COUNT, on_text=server_dies)
    finally:
        own.stop()
    assert caught.value.message == (f"The connection to the remote server at "
                                    f"127.0.0.1:{own.port} dropped while writing the reply.")
    reply = ctx.chats.messages(conversation_id)[-1]
    assert reply.role == "assistant" and reply.state == "failed"
    assert reply.content == "".join(pieces) and reply.content


def test_saved_remote_from_the_cli_against_hearth_serve(data_dir: Path, hearth: HearthServer,
                                                        tmp_path: Path) -> None:
    env = {"REMOTE_KEY": KEY}
    added = _cli(data_dir, "models", "remote", "add", hearth.url, "--api-key-env", "REMOTE_KEY",
                 "--json", env=env)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["models"] == [hearth.model]
    listed = json.loads(_cli(data_dir, "models", "remote", "list", "--json").stdout)
    assert [(s["url"], s["model"]) for s in listed] == [(hearth.url, hearth.model)]
    # Documents stay here: indexed and searched locally, the excerpts go with the prompt.
    (tmp_path / "lighthouse.txt").write_text(FACT + "\n", encoding="utf-8")
    indexed = _cli(data_dir, "docs", "add", str(tmp_path / "lighthouse.txt"),
                   "--collection", "notes")
    assert indexed.returncode == 0, indexed.stderr
    # The key is passed again: a headless test machine has no keychain to keep it.
    plain = _cli(data_dir, "chat", "--model", f"remote:{hearth.model}", "--api-key-env",
                 "REMOTE_KEY", "--max-tokens", "8", "--json", "Who kept the cat?", env=env)
    assert plain.returncode == 0, plain.stderr
    with_docs = _cli(data_dir, "chat", "--model", f"remote:{hearth.model}", "--api-key-env",
                     "REMOTE_KEY", "--max-tokens", "8", "--collection", "notes", "--json",
                     "Who kept the cat?", env=env)
    assert with_docs.returncode == 0, with_docs.stderr
    a, b = json.loads(plain.stdout), json.loads(with_docs.stdout)
    assert a["state"] == b["state"] == "done"
    assert a["remote_host"] == b["remote_host"] == f"127.0.0.1:{hearth.port}"
    # Hearth's serve reports usage: the excerpt really went out with the question.
    assert b["prompt_tokens"] > a["prompt_tokens"] + 20
    assert b["sources"] and b["sources"][0]["path"].endswith("lighthouse.txt")
    removed = _cli(data_dir, "models", "remote", "rm", hearth.url)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(_cli(data_dir, "models", "remote", "list", "--json").stdout) == []
    gone = _cli(data_dir, "chat", "--model", f"remote:{hearth.model}", "Hello")
    assert gone.returncode == 1 and "No remote server is saved" in gone.stderr
