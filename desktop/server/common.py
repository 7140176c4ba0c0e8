"""What the OpenAI and the Ollama APIs share: the loaded model, prompt rendering, sampling
parameters, and waiting for a queued job from the event loop (cancelled if the client leaves)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from desktop.core.chat import reasoning
from desktop.core.chat.service import ModelState
from desktop.core.chat.templates import alternate, fold_system, render_parts
from desktop.core.engine.client import LoadOptions
from desktop.core.errors import HearthError, TemplateRefused
from desktop.server.queue import EngineQueue, Job

_END = object()
_ids = itertools.count(1)


class ApiError(HearthError):
    """A request the API refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass
class Backend:
    """The server's view of the app: the queue to the one engine, the chat model it serves,
    the sampling defaults (app settings < the model's own defaults) and the embedding model."""

    queue: EngineQueue
    model: ModelState
    sampling: dict[str, Any]
    embed_model: str | None = None
    started: float = field(default_factory=time.time)

    @property
    def model_id(self) -> str:
        return Path(self.model.path).stem

    @property
    def embed_id(self) -> str | None:
        return Path(self.embed_model).stem if self.embed_model else None

    def load_embedder(self) -> None:
        """Runs on the queue's thread: load the documents' embedding model beside the chat
        model, as the documents index does (AppContext.embedder)."""
        if not self.embed_model:
            raise ApiError(400, "No embedding model is set: start the server with "
                           "--embed-model PATH, or choose one for documents in the window.")
        engine = self.queue.engine
        if engine.embedding_model != self.embed_model:
            if not Path(self.embed_model).is_file():
                raise ApiError(500, f"The embedding model {self.embed_model} is missing.")
            engine.load(LoadOptions(self.embed_model, n_ctx=512, n_batch=512, embedding=True))


def label(request: Request) -> str:
    return f"{request.method} {request.url.path} #{next(_ids)}"


async def read_json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


# --- prompts -------------------------------------------------------------------------------
def message_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; only text parts are supported."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ApiError(400, "Only text message content is supported by this model.")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise ApiError(400, "A message's content must be a string or a list of text parts.")


def render_chat(model: ModelState, messages: Any) -> list[dict[str, Any]]:
    """Render like ChatService.build_prompt does, so an API conversation's earlier turns give
    the same tokens every time and the worker reuses its KV cache for them."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    controls = reasoning.template_options(model.fmt.source)
    for message in messages:
        if not isinstance(message, dict):
            raise ApiError(400, "Each message must be an object with 'role' and 'content'.")
        role = message.get("role")
        text = message_text(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turn: dict[str, Any] = {"role": role, "content": text}
            thought = message.get("reasoning_content")
            # Earlier thinking goes back only to templates that read it, as in the chat service.
            if role == "assistant" and controls["past_reasoning"] and isinstance(thought, str) \
                    and thought:
                turn["reasoning_content"] = thought
            turns.append(turn)
        else:
            raise ApiError(400, f"The message role {role!r} is not supported "
                           "(use system, user or assistant).")
    turns = alternate([t for t in turns if t["content"]])
    # A new chat's defaults: thinking on where the template has a switch.
    options = {"enable_thinking": True} if controls["thinking_switch"] else {}
    instructions = "\n\n".join(s for s in system if s).strip()
    if not instructions:
        return render_parts(model.fmt, turns, options=options)
    try:
        return render_parts(model.fmt, [{"role": "system", "content": instructions}, *turns],
                            options=options)
    except TemplateRefused:
        return render_parts(model.fmt, fold_system(instructions, turns), options=options)


# --- sampling ------------------------------------------------------------------------------
def _number(value: Any, name: str, low: float, high: float | None, kind: type = float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not float(value).is_integer()):
        raise ApiError(400, f"'{name}' must be {'an integer' if kind is int else 'a number'}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"'{name}' must be {bounds}.")
    return kind(value)


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise ApiError(400, "'stop' must be a string or a list of strings.")


def sampling_params(backend: Backend, values: dict[str, Any], *, json_schema: Any = None,
                    chat: bool = True) -> dict[str, Any]:
    """Worker params from request values (None: the app's default for this model). A chat
    also stops at the template's end-of-turn strings; a raw completion only where asked."""
    params = dict(backend.sampling)
    given = {
        "temperature": _number(values.get("temperature"), "temperature", 0, 5),
        "top_p": _number(values.get("top_p"), "top_p", 0, 1),
        "top_k": _number(values.get("top_k"), "top_k", 0, None, int),
        "min_p": _number(values.get("min_p"), "min_p", 0, 1),
        "repeat_penalty": _number(values.get("repeat_penalty"), "repeat_penalty", 0.01, 5),
        "seed": _number(values.get("seed"), "seed", -(2 ** 63), 2 ** 64, int),
    }
    params.update({k: v for k, v in given.items() if v is not None})
    max_tokens = values.get("max_tokens")
    if max_tokens is not None and max_tokens != -1:  # Ollama: -1 = no limit
        params["max_tokens"] = _number(max_tokens, "max_tokens", 1, None, int)
    elif max_tokens == -1:
        params["max_tokens"] = 0  # the worker's "until the context is full"
    params["stop"] = [*_stops(values.get("stop")), *(backend.model.fmt.stop if chat else [])]
    if values.get("ignore_eos"):
        params["ignore_eos"] = True  # as llama-server accepts it: always write max_tokens
    if json_schema is not None:
        if not isinstance(json_schema, dict):
            raise ApiError(400, "The JSON schema must be an object.")
        params["json_schema"] = json_schema
    fmt = reasoning.detect_format(backend.model.fmt.source,
                                  frozenset(backend.model.info.special_tokens))
    if fmt is not None:
        params["reasoning_format"] = fmt  # the worker sends thinking apart from the answer
    # API conversations have no chat id: the worker keeps them in its live KV cache (session
    # None), and a window chat that was active has its state saved first.
    params["session"] = None
    return params


# --- waiting for the queue, from the event loop --------------------------------------------
def _retrieve(future: asyncio.Future[Any]) -> None:
    # A job dropped after its client left: nobody awaits it, so read its exception here.
    if not future.cancelled():
        future.exception()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def wait_job(request: Request, job: Job) -> Any:
    """The job's result; if the client disconnects first, the job is cancelled."""
    future = asyncio.wrap_future(job.future)
    future.add_done_callback(_retrieve)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            return future.result()
        request.app.state.backend.queue.log(f"hearth serve: {job.label}: the client hung up")
        job.cancel("the client disconnected")
        raise ClientGone()
    finally:
        watcher.cancel()


async def stream_job(backend: Backend, name: str, parts: list[dict[str, Any]],
                     params: dict[str, Any]
                     ) -> AsyncIterator[tuple[str, str] | dict[str, Any]]:
    """(reasoning, text) pieces as the worker streams them, then the done event (a dict). If
    the consumer stops early (the client disconnected and the response was cancelled), the
    job is too."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[Any] = asyncio.Queue()

    def deliver(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(pieces.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopping): nobody to tell
            pass

    job = backend.queue.generate(name, parts, params, on_piece=deliver)
    job.future.add_done_callback(lambda _: deliver(_END))
    try:
        while True:
            item = await pieces.get()
            if item is _END:
                break
            yield item
        yield job.future.result()
    finally:
        if not job.future.done():
            job.cancel("the client disconnected")


def usage(result: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached) token counts of a done event."""
    return (int(result.get("prompt_tokens") or 0), int(result.get("completion_tokens") or 0),
            int(result.get("cached_tokens") or 0))
