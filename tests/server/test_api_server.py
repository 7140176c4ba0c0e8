"""`hearth serve` as users run it: a real subprocess on a real loopback port with the real test
model, driven by the official `openai` and `ollama` clients (and raw HTTP where a client
would hide what is tested: headers, status codes, a client that hangs up)."""

from __future__ import annotations

import json
import math
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
EMBED_MODEL = REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2-f16.gguf"
KEY = "test-key-7f3a"
READY_S = 180  # a bound for start-up on a slow machine, never a sleep
LINE_S = 180


class Server:
    """A `python main.py serve` child; its stderr lines are collected as they come."""

    def __init__(self, data_dir: Path, model: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        command = [sys.executable, str(REPO / "main.py"), "--data-dir", str(data_dir), "serve",
                   "--port", "0", "--model", str(model), *args]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.history: list[str] = []  # every stderr line read by wait_line
        self.stdout: queue.Queue[str | None] = queue.Queue()
        for stream, sink in ((self.proc.stderr, self.lines), (self.proc.stdout, self.stdout)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        line = self.wait_line("serving ")
        self.url = line.split(" at ")[1].split("/v1")[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    @staticmethod
    def _pump(stream, sink: queue.Queue[str | None]) -> None:  # noqa: ANN001
        for line in stream:
            sink.put(line.rstrip("\n"))
        sink.put(None)

    def wait_line(self, needle: str, source: queue.Queue[str | None] | None = None) -> str:
        """The next line containing `needle` (an event: blocks until the server writes it)."""
        seen = []
        while True:
            try:
                line = (source or self.lines).get(timeout=LINE_S)
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r}; got: {seen}") from None
            if line is None:
                raise AssertionError(f"the server ended without {needle!r}; output: {seen}")
            seen.append(line)
            self.history.append(line)
            if needle in line:
                return line

    def drain(self) -> None:
        """Forget the lines written so far (earlier tests' requests)."""
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def wait_ready(self, key: str) -> None:
        """Poll /v1/models until it answers; connection refused is retried, bounded."""
        for _ in range(200):
            try:
                response = httpx.get(f"{self.url}/v1/models", timeout=READY_S,
                                     headers={"Authorization": f"Bearer {key}"})
                response.raise_for_status()
                return
            except httpx.ConnectError:
                if self.proc.poll() is not None:
                    raise AssertionError("the server exited before it was ready") from None
                try:
                    self.proc.wait(timeout=0.05)  # returns at once if the server dies
                except subprocess.TimeoutExpired:
                    pass
        raise AssertionError("the server never answered /v1/models")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path) -> Iterator[Server]:
    assert EMBED_MODEL.is_file(), (
        f"the embedding model must be at {EMBED_MODEL} (../shared/models): the embeddings "
        "endpoints cannot be tested without it")
    data = tmp_path_factory.mktemp("serve-data")
    # The key comes from the environment here; --api-key and a generated key are tested below.
    srv = Server(data, gemma_path, "--embed-model", str(EMBED_MODEL),
                 env={"HEARTH_API_KEY": KEY})
    try:
        srv.wait_ready(KEY)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def olla(server: Server) -> ollama.Client:
    return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})


def _chat(client: openai.OpenAI, text: str, **kwargs) -> str:  # noqa: ANN003
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": text}],
        **{"temperature": 0, "max_tokens": 12, **kwargs})
    return reply.choices[0].message.content or ""


def _chat_stream(client: openai.OpenAI, text: str, max_tokens: int = 12) -> str:
    stream = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": text}], temperature=0,
        max_tokens=max_tokens, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


# --- OpenAI API -----------------------------------------------------------------------------
def test_models_list(client: openai.OpenAI, gemma_path: Path) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == [gemma_path.stem, EMBED_MODEL.stem]


def test_chat_non_stream_and_stream_agree(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Name a colour."}],
        temperature=0, max_tokens=10, seed=7)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= 10 and reply.usage.prompt_tokens > 0

    stream = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Name a colour."}],
        temperature=0, max_tokens=10, seed=7, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content  # greedy: the same reply, streamed in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_stop_strings_and_sampling_parameters(client: openai.OpenAI) -> None:
    full = _chat(client, "Count: one, two, three, four, five", max_tokens=24)
    word = next(w for w in full.split() if len(w) > 2)
    cut = _chat(client, "Count: one, two, three, four, five", max_tokens=24, stop=[word])
    assert word not in cut and full.startswith(cut)
    # Sampling at a temperature with a seed repeats itself; top_p is accepted.
    one = _chat(client, "Write a word.", temperature=1.0, top_p=0.9, seed=42)
    assert one == _chat(client, "Write a word.", temperature=1.0, top_p=0.9, seed=42)


def test_follow_up_reuses_the_kv_cache(client: openai.OpenAI) -> None:
    system = ("You are a terse assistant for a lighthouse keeper who logs the weather, the "
              "ships that pass, and the colour of the sea at dusk, every evening.")
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": "What do you log?"}]
    first = client.chat.completions.create(model="gemma", messages=messages, temperature=0,
                                           max_tokens=16)
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And at dawn?"}]
    second = client.chat.completions.create(model="gemma", messages=messages, temperature=0,
                                            max_tokens=4)
    cached = second.usage.prompt_tokens_details.cached_tokens
    # The whole first exchange (its prompt and the reply's own tokens) came from the cache.
    assert cached >= first.usage.prompt_tokens + first.usage.completion_tokens - 1


def test_completions(client: openai.OpenAI) -> None:
    result = client.completions.create(model="gemma", prompt="The capital of France is",
                                       max_tokens=8, temperature=0)
    assert result.choices[0].text and result.usage.completion_tokens <= 8
    streamed = client.completions.create(model="gemma", prompt="The capital of France is",
                                         max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == result.choices[0].text


def test_embeddings(client: openai.OpenAI, olla: ollama.Client) -> None:
    texts = ["a cat sleeps on the mat", "a kitten naps on a rug", "tax law of 1902"]
    result = client.embeddings.create(model="embed", input=texts)  # base64 on the wire
    vectors = [item.embedding for item in result.data]
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(math.hypot(*v) - 1) < 1e-3 for v in vectors)  # normalized

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    floats = client.embeddings.create(model="embed", input=texts[0], encoding_format="float")
    # One text alone vs in a batch: the same vector up to float rounding.
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-3)
    # The Ollama endpoint uses the same model.
    assert olla.embed(model="embed", input=texts[0]).embeddings[0] == pytest.approx(
        vectors[0], abs=1e-3)


def test_response_format_json_schema(client: openai.OpenAI) -> None:
    schema = {"type": "object",
              "properties": {"name": {"type": "string", "maxLength": 20},
                             "age": {"type": "integer"},
                             "pets": {"type": "array", "items": {"type": "string",
                                                                 "maxLength": 12},
                                      "maxItems": 3}},
              "required": ["name", "age", "pets"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Describe a person as JSON."}],
        temperature=0, max_tokens=200,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": schema, "strict": True}})
    data = json.loads(reply.choices[0].message.content)
    assert set(data) == {"name", "age", "pets"}
    assert isinstance(data["name"], str) and len(data["name"]) <= 20
    assert isinstance(data["age"], int) and not isinstance(data["age"], bool)
    assert isinstance(data["pets"], list) and len(data["pets"]) <= 3
    assert all(isinstance(p, str) for p in data["pets"])

    any_object = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Some JSON please."}],
        temperature=0, max_tokens=120, response_format={"type": "json_object"})
    assert isinstance(json.loads(any_object.choices[0].message.content), dict)


def test_bad_requests_get_one_sentence(client: openai.OpenAI, server: Server) -> None:
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="gemma", temperature=9,
                                       messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="gemma", messages=[])
    response = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json",
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The request body is not valid JSON."


# --- Ollama API -----------------------------------------------------------------------------
def test_ollama_tags_chat_generate(olla: ollama.Client, client: openai.OpenAI,
                                   gemma_path: Path) -> None:
    names = [m.model for m in olla.list().models]
    assert names == [gemma_path.stem, EMBED_MODEL.stem]
    options = {"temperature": 0, "num_predict": 10}
    reply = olla.chat(model="gemma", messages=[{"role": "user", "content": "Name a colour."}],
                      options=options)
    assert reply.done and reply.done_reason in ("stop", "length")
    assert 0 < reply.eval_count <= 10
    # The same prompt and sampling through either API gives the same reply.
    assert reply.message.content == _chat(client, "Name a colour.", max_tokens=10)
    streamed = olla.chat(model="gemma", messages=[{"role": "user", "content": "Name a colour."}],
                         options=options, stream=True)
    parts = list(streamed)
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts) == reply.message.content

    generated = olla.generate(model="gemma", prompt="Name a colour.", options=options)
    assert generated.response == reply.message.content  # the prompt as a user turn
    raw = olla.generate(model="gemma", prompt="The capital of France is", raw=True,
                        options={"temperature": 0, "num_predict": 8}, stream=True)
    assert "".join(p.response or "" for p in raw)


def test_ollama_format_schema(olla: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24}},
              "required": ["city"]}
    reply = olla.chat(model="gemma", messages=[{"role": "user", "content": "A city as JSON."}],
                      format=schema, options={"temperature": 0, "num_predict": 80})
    data = json.loads(reply.message.content)
    assert isinstance(data["city"], str)


# --- security -------------------------------------------------------------------------------
def test_a_key_is_required(server: Server, gemma_path: Path) -> None:
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    wrong = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong API key" in wrong.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0).models.list()
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=server.url).chat(model="gemma",
                                            messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401


def test_foreign_host_header_is_refused(server: Server) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1:{server.port + 1}"):
        response = httpx.get(f"{server.url}/v1/models", headers={**auth, "Host": host})
        assert response.status_code == 403, host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}",
                 f"[::1]:{server.port}"):
        assert httpx.get(f"{server.url}/v1/models",
                         headers={**auth, "Host": host}).status_code == 200, host


def test_no_cors_headers_by_default(server: Server) -> None:
    origin = {"Origin": "https://example.com"}
    response = httpx.get(f"{server.url}/v1/models",
                         headers={**origin, "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    preflight = httpx.options(f"{server.url}/v1/chat/completions", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]


def test_generated_key_and_allowed_origin(tmp_path: Path, gemma_path: Path) -> None:
    # Every interface, as a user may choose: a warning, and still only its own Host names.
    srv = Server(tmp_path / "data", gemma_path, "--allow-origin", "https://app.example",
                 "--host", "0.0.0.0", env={"HEARTH_API_KEY": ""})
    try:
        assert any("warning: listening on 0.0.0.0" in line for line in srv.history)
        key = srv.wait_line("API key", srv.stdout).rsplit(" ", 1)[1]
        assert len(key) > 20
        srv.wait_ready(key)
        auth = {"Authorization": f"Bearer {key}"}
        allowed = httpx.get(f"{srv.url}/v1/models",
                            headers={**auth, "Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.get(f"{srv.url}/v1/models", headers={**auth, "Origin": "https://x.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(f"{srv.url}/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert httpx.get(f"{srv.url}/v1/models", headers={
            **auth, "Host": f"rebound.example:{srv.port}"}).status_code == 403
    finally:
        srv.stop()
    assert srv.stdout.get(timeout=LINE_S) is None  # the key was printed once, nothing else


# --- one engine, many clients -----------------------------------------------------------------
def test_concurrent_clients_are_all_answered_correctly(client: openai.OpenAI,
                                                        olla: ollama.Client) -> None:
    prompts = ["Name a fruit.", "Name a river.", "Name a planet.", "Name a tree."]
    # Each prompt is short enough (< 32 tokens) that the worker starts it from a clean cache,
    # so greedy replies are the same whatever ran before.
    expected = [_chat(client, p) for p in prompts]
    ask = [
        lambda: _chat_stream(client, prompts[0]),
        lambda: _chat(client, prompts[1]),
        lambda: _chat_stream(client, prompts[2]),
        lambda: "".join(p.message.content or "" for p in olla.chat(
            model="gemma", messages=[{"role": "user", "content": prompts[3]}],
            options={"temperature": 0, "num_predict": 12}, stream=True)),
    ]
    results: list[str | BaseException | None] = [None] * len(ask)
    start = threading.Barrier(len(ask))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = ask[i]()
        except BaseException as exc:  # reported by the assert below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ask))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_a_client_that_disconnects_cancels_its_generation(server: Server,
                                                          client: openai.OpenAI) -> None:
    server.drain()
    # A long generation (ignore_eos, as llama-server accepts it: it would run to the context's
    # end); the client reads its first piece and hangs up.
    stream = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Tell me a long story."}],
        temperature=0, max_tokens=3000, stream=True, extra_body={"ignore_eos": True})
    first = next(c for c in stream if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content

    # A second client queues behind it and hangs up before its turn: its job is dropped.
    waiting = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}],
                       "max_tokens": 4}).encode()
    waiting.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n"
                    + f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {KEY}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                      .encode() + body)
    queued = server.wait_line("queued behind")
    waiting.close()
    hung_up = server.wait_line("the client hung up")
    assert queued.split(":")[1] == hung_up.split(":")[1]

    stream.close()
    cancelled = server.wait_line("stop=cancelled")
    assert "(the client disconnected)" in cancelled
    assert int(cancelled.split(": ")[2].split()[0]) < 3000
    dropped = server.wait_line("dropped before it started")
    assert queued.split(":")[1] == dropped.split(":")[1]  # the same request
    # The engine is free again at once.
    assert _chat(client, "Name a colour.", max_tokens=4)


def test_allowed_hosts() -> None:
    from desktop.server.auth import allowed_hosts, is_loopback

    loop = allowed_hosts("127.0.0.1", 8080)
    assert loop == {"localhost:8080", "127.0.0.1:8080", "[::1]:8080"}
    assert allowed_hosts("::1", 80) >= {"[::1]", "localhost", "[::1]:80"}
    everywhere = allowed_hosts("0.0.0.0", 8080)
    assert loop < everywhere and "evil.example:8080" not in everywhere
    one = allowed_hosts("192.0.2.7", 9000)
    assert "192.0.2.7:9000" in one and "localhost:9000" not in one
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_bad_start_gets_one_sentence(tmp_path: Path, gemma_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "main.py"), "--data-dir",
                               str(tmp_path / "data"), "serve", "--api-key", KEY, *args],
                              cwd=REPO, capture_output=True, text=True, timeout=READY_S)

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = serve("--port", str(busy.getsockname()[1]), "--model", str(gemma_path))
    assert taken.returncode == 1 and "Traceback" not in taken.stderr
    assert "cannot listen on 127.0.0.1" in taken.stderr
    missing = serve("--port", "0", "--model", str(tmp_path / "nope.gguf"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("hearth: ")
