"""The OpenAI-compatible endpoints: /v1/models, /v1/chat/completions, /v1/completions and
/v1/embeddings, in the shapes the official `openai` client parses (SSE when streaming)."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from desktop.server.common import (
    ApiError,
    Backend,
    label,
    read_json,
    render_chat,
    sampling_params,
    stream_job,
    usage,
    wait_job,
)

FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _usage(result: dict[str, Any]) -> dict[str, Any]:
    prompt, completion, cached = usage(result)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _error_event(exc: Exception) -> bytes:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _sse({"error": {"message": message, "type": "server_error"}})


def _json_schema(body: dict[str, Any]) -> Any:
    """OpenAI's response_format: text, json_object (any object) or json_schema."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format.json_schema.schema must be a JSON schema object.")
        return schema
    raise ApiError(400, "response_format.type must be text, json_object or json_schema.")


def _params(backend: Backend, body: dict[str, Any], chat: bool = True) -> dict[str, Any]:
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Only one choice per request is supported (n=1).")
    values = dict(body)
    if values.get("max_completion_tokens") is not None:
        values["max_tokens"] = values["max_completion_tokens"]
    return sampling_params(backend, values, json_schema=_json_schema(body), chat=chat)


async def models(request: Request) -> Response:
    backend = _backend(request)
    owned = {"object": "model", "created": int(backend.started), "owned_by": "hearth"}
    data = [{"id": backend.model_id, **owned}]
    if backend.embed_id:
        data.append({"id": backend.embed_id, **owned})
    return JSONResponse({"object": "list", "data": data})


async def chat_completions(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    parts = render_chat(backend.model, body.get("messages"))
    params = _params(backend, body)
    name = label(request)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    head = {"id": ident, "created": created, "model": backend.model_id}
    if not body.get("stream"):
        result = await wait_job(request, backend.queue.generate(name, parts, params))
        message = {"role": "assistant", "content": result["text"]}
        if result.get("reasoning"):
            message["reasoning_content"] = result["reasoning"]  # as llama-server names it
        return JSONResponse({
            **head, "object": "chat.completion",
            "choices": [{"index": 0, "logprobs": None, "message": message,
                         "finish_reason": FINISH.get(str(result.get("stop_reason")), "stop")}],
            "usage": _usage(result)})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        chunk = {**head, "object": "chat.completion.chunk"}
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                 "content": ""},
                                          "finish_reason": None}]})
        try:
            async for item in stream_job(backend, name, parts, params):
                if isinstance(item, tuple):
                    thought, text = item
                    delta = {"content": text} if text else {}
                    if thought:
                        delta["reasoning_content"] = thought
                    yield _sse({**chunk, "choices": [{"index": 0, "delta": delta,
                                                      "finish_reason": None}]})
                    continue
                yield _sse({**chunk, "choices": [{
                    "index": 0, "delta": {},
                    "finish_reason": FINISH.get(str(item.get("stop_reason")), "stop")}]})
                if include_usage:
                    yield _sse({**chunk, "choices": [], "usage": _usage(item)})
        except Exception as exc:  # the status line is sent: report in the stream
            yield _error_event(exc)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def completions(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "'prompt' must be a non-empty string.")
    # A raw prompt, as llama-server takes it: control tokens written in it are parsed.
    parts = [{"text": prompt, "special": True}]
    params = _params(backend, body, chat=False)
    name = label(request)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": backend.model_id}
    if not body.get("stream"):
        result = await wait_job(request, backend.queue.generate(name, parts, params))
        return JSONResponse({**head, "choices": [{
            "index": 0, "text": result["text"], "logprobs": None,
            "finish_reason": FINISH.get(str(result.get("stop_reason")), "stop")}],
            "usage": _usage(result)})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        try:
            async for item in stream_job(backend, name, parts, params):
                if isinstance(item, tuple):
                    if item[1]:
                        yield _sse({**head, "choices": [{"index": 0, "text": item[1],
                                                         "logprobs": None,
                                                         "finish_reason": None}]})
                    continue
                yield _sse({**head, "choices": [{
                    "index": 0, "text": "", "logprobs": None,
                    "finish_reason": FINISH.get(str(item.get("stop_reason")), "stop")}]})
                if include_usage:
                    yield _sse({**head, "choices": [], "usage": _usage(item)})
        except Exception as exc:
            yield _error_event(exc)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(t, str) and t for t in value)):
        raise ApiError(400, "'input' must be a non-empty string or list of strings.")
    return value


async def embeddings(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    texts = embedding_inputs(body.get("input"))
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, "encoding_format must be float or base64.")
    vectors = await wait_job(request, backend.queue.embed(label(request), texts,
                                                          backend.load_embedder))

    def encode(vector: list[float]) -> Any:
        # The openai client asks for base64 by default: little-endian float32, as OpenAI sends.
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return vector

    return JSONResponse({
        "object": "list", "model": backend.embed_id,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                 for i, v in enumerate(vectors)],
        # The worker does not count embedding tokens; 0 says "not measured", not "free".
        "usage": {"prompt_tokens": 0, "total_tokens": 0}})
