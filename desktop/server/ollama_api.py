"""The Ollama endpoints many tools speak: /api/tags, /api/chat, /api/generate, /api/embed
(NDJSON when streaming, which is Ollama's default), plus /api/version."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from desktop import __version__
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
from desktop.server.openai_api import embedding_inputs

DONE_REASON = {"stop": "stop", "length": "length", "cancelled": "stop"}


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _params(backend: Backend, body: dict[str, Any], chat: bool = True) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'options' must be an object.")
    values = {key: options.get(key) for key in
              ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop")}
    predict = options.get("num_predict")
    values["max_tokens"] = -1 if predict in (-1, -2) else predict
    fmt = body.get("format")
    if fmt in (None, ""):
        schema = None
    elif fmt == "json":
        schema = {"type": "object"}
    elif isinstance(fmt, dict):
        schema = fmt
    else:
        raise ApiError(400, "'format' must be \"json\" or a JSON schema object.")
    return sampling_params(backend, values, json_schema=schema, chat=chat)


def _final(backend: Backend, result: dict[str, Any], started: float) -> dict[str, Any]:
    prompt, completion, _ = usage(result)
    gen_ns = int(completion / result["tokens_per_s"] * 1e9) if result.get("tokens_per_s") else 0
    return {"model": backend.model_id, "created_at": _now(), "done": True,
            "done_reason": DONE_REASON.get(str(result.get("stop_reason")), "stop"),
            "total_duration": int((time.perf_counter() - started) * 1e9), "load_duration": 0,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": int(float(result.get("prefill_s") or 0) * 1e9),
            "eval_count": completion, "eval_duration": gen_ns}


async def _answer(request: Request, backend: Backend, parts: list[dict[str, Any]],
                  params: dict[str, Any], stream: bool, shape: Any) -> Response:
    """One JSON object, or NDJSON lines: `shape(text, thinking)` puts a piece in the
    endpoint's own fields (message.content/thinking for chat, response/thinking for
    generate); thinking only where a reasoning model wrote some."""
    started = time.perf_counter()
    name = label(request)
    if not stream:
        result = await wait_job(request, backend.queue.generate(name, parts, params))
        return JSONResponse({**_final(backend, result, started),
                             **shape(result["text"], result.get("reasoning") or "")})

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for item in stream_job(backend, name, parts, params):
                if isinstance(item, tuple):
                    data = {"model": backend.model_id, "created_at": _now(),
                            **shape(item[1], item[0]), "done": False}
                else:
                    data = {**_final(backend, item, started), **shape("", "")}
                yield (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")
        except Exception as exc:  # the status line is sent: Ollama reports errors in-stream
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            yield (json.dumps({"error": message}) + "\n").encode("utf-8")

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def chat(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    parts = render_chat(backend.model, body.get("messages"))
    params = _params(backend, body)
    return await _answer(request, backend, parts, params, body.get("stream", True) is not False,
                         lambda text, thought: {"message": {
                             "role": "assistant", "content": text,
                             **({"thinking": thought} if thought else {})}})


async def generate(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string.")
    if body.get("raw"):
        # raw: the caller wrote the whole prompt, template tokens included.
        parts = [{"text": prompt, "special": True}]
    else:
        messages = [{"role": "user", "content": prompt}]
        if body.get("system"):
            messages.insert(0, {"role": "system", "content": str(body["system"])})
        parts = render_chat(backend.model, messages)
    params = _params(backend, body, chat=not body.get("raw"))
    return await _answer(request, backend, parts, params, body.get("stream", True) is not False,
                         lambda text, thought: {"response": text,
                                                **({"thinking": thought} if thought else {})})


async def embed(request: Request) -> Response:
    backend = _backend(request)
    body = await read_json(request)
    texts = embedding_inputs(body.get("input"))
    started = time.perf_counter()
    vectors = await wait_job(request, backend.queue.embed(label(request), texts,
                                                          backend.load_embedder))
    return JSONResponse({"model": backend.embed_id, "embeddings": vectors,
                         "total_duration": int((time.perf_counter() - started) * 1e9)})


def _tag(path: str, details: dict[str, Any]) -> dict[str, Any]:
    stat = Path(path).stat()
    return {"name": Path(path).stem, "model": Path(path).stem,
            "modified_at": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            "size": stat.st_size, "digest": "", "details": {"format": "gguf", **details}}


async def tags(request: Request) -> Response:
    backend = _backend(request)
    info = backend.model.info
    models = [_tag(backend.model.path, {
        "family": info.architecture, "families": [info.architecture],
        "parameter_size": info.parameter_label() or "",
        "quantization_level": info.quantization or ""})]
    if backend.embed_model and Path(backend.embed_model).is_file():
        models.append(_tag(backend.embed_model, {}))
    return JSONResponse({"models": models})


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})
