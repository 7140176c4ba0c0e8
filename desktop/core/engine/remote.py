"""A chat model on a remote OpenAI-compatible server, for models bigger than this machine.

The server is one the user configured (llama.cpp's `llama-server --rpc` over several hosts,
vLLM with tensor/pipeline parallelism, Ollama on a bigger box, another Hearth's `serve`).
Nothing here runs unless such a server was configured: there is no default URL.

It offers the chat service what the local engine does (DESIGN 10, "one engine, many clients"):
`generate()` returns a generation to iterate for (reasoning, text) pieces, `cancel()` from any
thread, and a `result` with the stop reason, token counts (from the server's usage when it sends
it) and timings. A remote server applies the model's own chat template, so it takes chat
MESSAGES, not the rendered template parts the local worker takes. Document retrieval stays
local: only the prompt (with the excerpts in the newest user turn) goes out.

A chat model chosen on a remote server is named by a reference string, `remote:MODEL@URL`,
wherever a local model has its GGUF path (the app's last model, a conversation's model).
API keys live in the OS keychain (never in settings), with the same timeout and
session-only fallback as the Hugging Face token (core/models/token.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from desktop.core.errors import EngineError, HearthError
from desktop.core.models.token import SERVICE, KeyringUnavailable, _call, _keyring

PREFIX = "remote:"
SETTINGS_KEY = "remote_servers"  # [{"url", "model", "n_ctx"?}] in settings.json: no keys
if TYPE_CHECKING:
    import httpx  # imported where used: the window opens without it (DESIGN 1)

KEY_USER = "remote-api-key:"  # keychain user name prefix, followed by the server's URL
CONNECT_S = 10.0
READ_S = 300.0  # a big model on several hosts can think a long while before its first token
LIST_S = 15.0
# Sampling settings llama.cpp's servers, vLLM and Ollama read beside the OpenAI ones.
EXTRA_SAMPLING = ("top_k", "min_p", "repeat_penalty")


class RemoteEngineError(EngineError):
    """The remote server could not be reached, refused the key, timed out or dropped."""


# --- references and URLs ---------------------------------------------------------------------
def normalize_url(url: str) -> str:
    """The server's base URL as stored: http(s), a host, no trailing slash. Bad input is one
    sentence."""
    text = (url or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HearthError(f"{url!r} is not a server address: use one like "
                          "http://192.168.1.20:8080 (http or https, then the host and port).")
    if parts.query or parts.fragment:
        raise HearthError(f"{url!r} has a query or fragment; give only the server's address.")
    return text


def api_base(url: str) -> str:
    """Where the OpenAI endpoints are: the URL itself when it ends in /v1, else URL/v1."""
    url = normalize_url(url)
    return url if url.endswith("/v1") else f"{url}/v1"


def host_of(url: str) -> str:
    """host:port as shown to the user (never a user name or password in the URL)."""
    parts = urlsplit(url)
    host = parts.hostname or url
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{host}:{parts.port}" if parts.port else host


def remote_ref(url: str, model: str) -> str:
    return f"{PREFIX}{model}@{normalize_url(url)}"


def is_remote_ref(path: str | None) -> bool:
    return bool(path) and str(path).startswith(PREFIX) and "@http" in str(path)


def parse_ref(ref: str) -> tuple[str, str]:
    """(url, model) of a `remote:MODEL@URL` reference (model names may hold @, URLs start
    with http)."""
    if not is_remote_ref(ref):
        raise HearthError(f"{ref!r} is not a remote model reference (remote:MODEL@URL).")
    body = ref[len(PREFIX):]
    at = body.rfind("@http")
    return body[at + 1:], body[:at]


def ref_label(ref: str) -> str:
    """"Remote: MODEL @ HOST", as the model picker and the chat marker show it."""
    url, model = parse_ref(ref)
    return f"Remote: {model} @ {host_of(url)}"


# --- saved servers (settings) and their keys (keychain) ---------------------------------------
def saved_servers(settings: Any) -> list[dict[str, Any]]:
    servers = settings.get(SETTINGS_KEY) or []
    return [dict(s) for s in servers if isinstance(s, dict) and isinstance(s.get("url"), str)]


def find_server(settings: Any, url: str) -> dict[str, Any] | None:
    url = normalize_url(url)
    return next((s for s in saved_servers(settings) if s["url"] == url), None)


def save_server(settings: Any, url: str, model: str | None = None,
                n_ctx: int | None = None) -> dict[str, Any]:
    """Add or update a server (its URL, the chosen model); the key is stored apart."""
    url = normalize_url(url)
    servers = saved_servers(settings)
    entry = next((s for s in servers if s["url"] == url), None)
    if entry is None:
        entry = {"url": url}
        servers.append(entry)
    if model:
        entry["model"] = model
    if n_ctx:
        entry["n_ctx"] = int(n_ctx)
    settings.set(SETTINGS_KEY, servers)
    return entry


def remove_server(settings: Any, url: str) -> bool:
    """Forget a server and its key; the app's last model stops pointing at it."""
    url = normalize_url(url)
    servers = saved_servers(settings)
    kept = [s for s in servers if s["url"] != url]
    if len(kept) == len(servers):
        return False
    settings.set(SETTINGS_KEY, kept)
    last = settings.get("last_model")
    if is_remote_ref(last) and parse_ref(last)[0] == url:
        settings.set("last_model", None)
    forget_api_key(url)
    return True


def resolve_model(settings: Any, name: str) -> str:
    """`remote:NAME` (or NAME@URL) to a full reference, through the saved servers: the one
    server whose chosen model is NAME, else the only server saved."""
    if is_remote_ref(name):
        return name
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if "@http" in name:
        model, url = name.rsplit("@", 1)[0], name[name.rfind("@http") + 1:]
        return remote_ref(url, model)
    servers = saved_servers(settings)
    if not servers:
        raise HearthError("No remote server is saved: add one with `hearth models remote add "
                          "URL` or pass --remote URL.")
    chosen = [s for s in servers if s.get("model") == name] or (
        servers if len(servers) == 1 else [])
    if not chosen:
        raise HearthError(f"Several remote servers are saved and none has {name!r} chosen: "
                          f"pass remote:{name}@URL.")
    return remote_ref(chosen[0]["url"], name)


_session_keys: dict[str, str] = {}


def get_api_key(url: str) -> str | None:
    """The key entered for this server (this session's, else the keychain's)."""
    url = normalize_url(url)
    if url in _session_keys:
        return _session_keys[url]
    try:
        stored = _call(lambda: _keyring().get_password(SERVICE, KEY_USER + url))
    except KeyringUnavailable:
        stored = None
    return stored or None


def set_api_key(url: str, key: str) -> bool:
    """Store the key in the keychain. False: no keychain answered, so it is kept for this
    session only (the caller says so)."""
    url = normalize_url(url)
    key = key.strip()
    if not key:
        forget_api_key(url)
        return True
    try:
        _call(lambda: _keyring().set_password(SERVICE, KEY_USER + url, key))
        _session_keys.pop(url, None)
        return True
    except KeyringUnavailable:
        _session_keys[url] = key
        return False


def use_api_key(url: str, key: str) -> None:
    """Use this key for the server in this process only (`--api-key-env`): not stored."""
    _session_keys[normalize_url(url)] = key.strip()


def forget_api_key(url: str) -> None:
    url = normalize_url(url)
    _session_keys.pop(url, None)
    try:
        _call(lambda: _keyring().delete_password(SERVICE, KEY_USER + url))
    except KeyringUnavailable:
        pass


# --- talking to the server ---------------------------------------------------------------------
def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _explain(exc: BaseException, url: str, action: str) -> RemoteEngineError:
    """One sentence for what went wrong with the server (the details say more)."""
    import httpx

    host = host_of(url)
    if isinstance(exc, httpx.ConnectTimeout):
        text = f"The remote server at {host} did not answer in time while {action}."
    elif isinstance(exc, httpx.TimeoutException):
        text = f"The remote server at {host} stopped answering while {action} (timed out)."
    elif isinstance(exc, httpx.ConnectError):
        text = (f"Could not connect to the remote server at {host} while {action}: it is "
                "down, or the address is wrong (connection refused or unreachable).")
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        text = f"The connection to the remote server at {host} dropped while {action}."
    else:
        text = f"The remote server at {host} could not be used while {action} ({exc})."
    return RemoteEngineError(text, details=f"{type(exc).__name__}: {exc}")


def _status_error(response: httpx.Response, url: str) -> RemoteEngineError:
    host = host_of(url)
    try:
        body = response.json()
        detail = body.get("error") or body.get("detail") or body
        if isinstance(detail, dict):
            detail = detail.get("message") or json.dumps(detail)
    except (ValueError, AttributeError):
        detail = response.text[:300]
    code = response.status_code
    if code in (401, 403):
        text = (f"The remote server at {host} refused the API key ({code}): set the right key "
                "for it (Models → Remote server, or --api-key-env).")
    elif code == 404:
        text = f"The remote server at {host} does not know that model or endpoint (404): {detail}"
    else:
        text = f"The remote server at {host} answered with an error ({code}): {detail}"
    return RemoteEngineError(str(text).strip(), details=str(detail))


def _context_length(entry: dict[str, Any]) -> int | None:
    """The model's context length where the server tells it (vLLM: max_model_len; llama-server:
    meta.n_ctx or n_ctx_train; LM Studio and others: context_length)."""
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    for value in (entry.get("max_model_len"), entry.get("context_length"),
                  meta.get("n_ctx"), meta.get("n_ctx_train")):
        if isinstance(value, int) and value > 0:
            return value
    return None


def list_models(url: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """The server's models (GET /v1/models): [{"id", "n_ctx"}], n_ctx None when not told."""
    import httpx

    base = api_base(url)
    try:
        response = httpx.get(f"{base}/models", headers=_headers(api_key),
                             timeout=httpx.Timeout(LIST_S, connect=CONNECT_S))
    except httpx.HTTPError as exc:
        raise _explain(exc, url, "listing its models") from exc
    if response.status_code >= 400:
        raise _status_error(response, url)
    try:
        data = response.json().get("data")
        models = [{"id": str(m["id"]), "n_ctx": _context_length(m)} for m in data]
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise RemoteEngineError(f"The server at {host_of(url)} did not answer like an "
                                "OpenAI-compatible server (no model list at /v1/models).",
                                details=response.text[:500]) from exc
    return models


@dataclass
class RemoteEngine:
    """One model on one server; `generate()` streams a chat completion."""

    url: str
    model: str
    api_key: str | None = None
    n_ctx: int = 4096  # what the chat budget plans with (the server's, when it told us)

    @property
    def host(self) -> str:
        return host_of(self.url)

    @property
    def ref(self) -> str:
        return remote_ref(self.url, self.model)

    def request_body(self, messages: list[dict[str, Any]],
                     params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                # usage arrives in a last chunk (OpenAI, vLLM, llama-server)
                                "stream_options": {"include_usage": True}}
        for key in ("temperature", "top_p", "seed"):
            if params.get(key) is not None:
                body[key] = params[key]
        if params.get("max_tokens"):
            body["max_tokens"] = int(params["max_tokens"])  # 0: until the server's limit
        for key in EXTRA_SAMPLING:
            if params.get(key) is not None:
                body[key] = params[key]
        if params.get("stop"):
            body["stop"] = list(params["stop"])
        return body

    def generate(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> RemoteGeneration:
        return RemoteGeneration(self, self.request_body(messages, params))


@dataclass
class RemoteGeneration:
    """A running remote chat completion, iterated like the local engine's Generation."""

    engine: RemoteEngine
    body: dict[str, Any]
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    on_progress: Any = None  # the local engine's prompt progress; a server does not send it
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop (from any thread): the stream is closed at the next chunk, and a server that
        sees its client go away stops generating."""
        self._cancelled.set()

    def __iter__(self) -> Iterator[str]:
        for _, text in self.pieces():
            if text:
                yield text

    def pieces(self) -> Iterator[tuple[str, str]]:
        import httpx

        engine = self.engine
        started = time.monotonic()
        first: float | None = None
        thinking_from: float | None = None
        thinking_to: float | None = None
        chunks = 0
        usage: dict[str, Any] = {}
        finish: str | None = None
        if self._cancelled.is_set():  # stopped before anything was sent
            self.result = {"event": "done", "stop_reason": "cancelled", "completion_tokens": 0}
            return
        timeout = httpx.Timeout(READ_S, connect=CONNECT_S)
        try:
            with httpx.stream("POST", f"{api_base(engine.url)}/chat/completions",
                              json=self.body, headers=_headers(engine.api_key),
                              timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _status_error(response, engine.url)
                for line in response.iter_lines():
                    if self._cancelled.is_set():
                        finish = "cancelled"
                        break  # leaving the block closes the connection
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        continue  # a keep-alive or comment some servers send
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):
                        error = chunk["error"]
                        message = error.get("message") if isinstance(error, dict) else error
                        raise RemoteEngineError(
                            f"The remote server at {engine.host} reported an error: {message}")
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        # vLLM and llama-server send a reasoning model's thinking apart.
                        thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        content = delta.get("content") or ""
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
                        if not (thought or content):
                            continue
                        now = time.monotonic()
                        if first is None:
                            first = now
                        if thought:
                            thinking_from = thinking_from or now
                            thinking_to = now
                            self.reasoning.append(thought)
                        chunks += 1
                        self.text.append(content)
                        yield thought, content
        except httpx.HTTPError as exc:
            if self._cancelled.is_set():
                finish = "cancelled"  # closed under us while stopping: not an error
            else:
                raise _explain(exc, engine.url, "writing the reply") from exc
        if self._cancelled.is_set():
            finish = "cancelled"
        ended = time.monotonic()
        completion = usage.get("completion_tokens")
        if not isinstance(completion, int):
            completion = chunks  # servers without usage send about one token per chunk
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        generating = ended - first if first is not None else 0.0
        self.result = {
            "event": "done",
            "stop_reason": {"length": "length", "cancelled": "cancelled"}.get(finish or "",
                                                                             "stop"),
            "prompt_tokens": usage.get("prompt_tokens"),
            "cached_tokens": cached,
            "completion_tokens": completion,
            "ttft_s": (first - started) if first is not None else None,
            "tokens_per_s": (completion / generating) if completion and generating > 0
            else None,
            "reasoning_s": (thinking_to - thinking_from)
            if thinking_from is not None and thinking_to is not None else None,
            "remote_host": engine.host,
        }

    def wait(self) -> dict[str, Any]:
        for _ in self:
            pass
        assert self.result is not None
        return self.result


def engine_for(settings: Any, ref: str, api_key: str | None = None) -> RemoteEngine:
    """The engine for a `remote:MODEL@URL` reference: the key given, else the keychain's;
    the context length saved with the server, else the app's."""
    url, model = parse_ref(ref)
    saved = find_server(settings, url) or {}
    n_ctx = int(saved.get("n_ctx") or settings.get("n_ctx") or 4096)
    return RemoteEngine(url, model, api_key if api_key is not None else get_api_key(url), n_ctx)
