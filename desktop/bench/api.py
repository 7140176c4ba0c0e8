"""`hearth bench --api`: streamed tokens/s through the API server against the same generation
through the chat service, on one engine, interleaved (issue 13's target: >= 0.95x)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = "Tell me a story about a lighthouse keeper."


def _rate(stamps: list[float], tokens: int) -> float:
    """Tokens/s between the first and the last streamed piece, as a reader sees them."""
    if tokens < 2 or len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return 0.0
    return (tokens - 1) / (stamps[-1] - stamps[0])


def bench_api(model: str, gen_tokens: int, repeats: int) -> dict[str, Any]:
    import httpx

    from desktop.core.chat.service import ChatService
    from desktop.core.context import AppContext
    from desktop.core.settings import SAMPLING_DEFAULTS
    from desktop.server.app import ApiServer
    from desktop.server.auth import generate_key
    from desktop.server.common import Backend
    from desktop.server.queue import EngineQueue

    with tempfile.TemporaryDirectory(prefix="hearth-bench-api-") as data:
        ctx = AppContext(Path(data))
        try:
            service = ChatService(ctx)
            state = service.load_model(model)
            sampling = {**SAMPLING_DEFAULTS, "temperature": 0, "max_tokens": gen_tokens}
            key = generate_key()
            server = ApiServer(Backend(EngineQueue(ctx.engine, log=lambda _: None), state,
                                       sampling), port=0, key=key)
            server.start_in_thread()
            chat_rates, api_rates, tokens = [], [], []
            try:
                with httpx.Client(base_url=server.url, timeout=None,
                                  headers={"Authorization": f"Bearer {key}"}) as http:
                    for _ in range(repeats + 1):  # the first round warms up
                        conversation = service.new_conversation(settings=sampling)
                        stamps: list[float] = []

                        def stamp(_: str, into: list[float] = stamps) -> None:
                            into.append(time.perf_counter())

                        reply = service.send(conversation.id, PROMPT, on_text=stamp)
                        chat_rate = _rate(stamps, reply.completion_tokens or 0)
                        api_stamps: list[float] = []
                        api_tokens = 0
                        with http.stream("POST", "/v1/chat/completions", json={
                                "model": "local", "stream": True, "temperature": 0,
                                "max_tokens": gen_tokens,
                                "stream_options": {"include_usage": True},
                                "messages": [{"role": "user", "content": PROMPT}]}) as response:
                            for line in response.iter_lines():
                                if not line.startswith("data: {"):
                                    continue
                                chunk = json.loads(line[6:])
                                if chunk.get("usage"):
                                    api_tokens = chunk["usage"]["completion_tokens"]
                                elif chunk["choices"] and chunk["choices"][0]["delta"].get(
                                        "content"):
                                    api_stamps.append(time.perf_counter())
                        chat_rates.append(chat_rate)
                        api_rates.append(_rate(api_stamps, api_tokens))
                        tokens.append(api_tokens)
            finally:
                server.stop()
        finally:
            ctx.close()
    return {"chat_tokens_per_s": statistics.median(chat_rates[1:]),
            "api_tokens_per_s": statistics.median(api_rates[1:]),
            "tokens": statistics.median(tokens[1:])}
