"""The benchmark's reference: raw llama.cpp, in-process, through the low-level API.

A minimal loop of llama_decode and llama.cpp's own sampler, as llama-bench does it, with
the same model parameters the worker uses. Nothing of Hearth's streaming, protocol or
detokenizing is on this path, so the ratios in `bench` show exactly what Hearth adds.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp

from desktop.engine_worker.runner import (
    Decoder,
    Runner,
    build_sampler,
    open_model,
    quarter_rates,
)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Reference:
    def __init__(self, path: str, *, n_ctx: int, n_threads: int, n_threads_batch: int,
                 n_batch: int = 512) -> None:
        with _quiet_stderr():  # llama.cpp prints its load log to fd 2 even when not verbose
            self.llm = open_model(path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                  n_threads=n_threads, n_threads_batch=n_threads_batch,
                                  logits_all=False, swa_full=False, verbose=False)
        self.decoder = Decoder(self.llm.ctx, n_batch)
        self.memory = llama_cpp.llama_get_memory(self.llm.ctx)
        tokenizer = Runner()
        tokenizer.llm = self.llm
        self.tokenize_parts = tokenizer.tokenize_parts

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)

    def prefill_s(self, tokens: list[int]) -> float:
        self.clear()
        started = time.perf_counter()
        self.decoder.decode(tokens)
        return time.perf_counter() - started

    def generate_s(self, n: int) -> float:
        """Time for n greedy tokens after whatever is in the cache (sample + decode each)."""
        sampler = build_sampler({"temperature": 0}, 0)
        one = Decoder(self.llm.ctx, 1)
        try:
            started = time.perf_counter()
            for _ in range(n):
                token = llama_cpp.llama_sampler_sample(sampler, self.llm.ctx, -1)
                one.decode([token])
            return time.perf_counter() - started
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def long_rates(self, prompt: list[int], n: int) -> dict[str, float]:
        """Speed over the first and last quarter of an n-token greedy reply."""
        self.prefill_s(prompt)
        sampler = build_sampler({"temperature": 0}, 0)
        one = Decoder(self.llm.ctx, 1)
        stamps = []
        try:
            for _ in range(n):
                token = llama_cpp.llama_sampler_sample(sampler, self.llm.ctx, -1)
                stamps.append(time.perf_counter())
                one.decode([token])
        finally:
            llama_cpp.llama_sampler_free(sampler)
        return quarter_rates(stamps)

    def first_token_s(self, history: list[int], new: list[int]) -> float:
        """Time to first token when `history` is cached and only `new` must be processed."""
        self.clear()
        self.decoder.decode(history)
        sampler = build_sampler({"temperature": 0}, 0)
        try:
            started = time.perf_counter()
            self.decoder.decode(new)
            llama_cpp.llama_sampler_sample(sampler, self.llm.ctx, -1)
            return time.perf_counter() - started
        finally:
            llama_cpp.llama_sampler_free(sampler)


def run_reference(path: str, prompt_parts: list[dict[str, Any]], *, gen_tokens: int,
                  followup: tuple[list[dict[str, Any]], int] | None,
                  cold: list[dict[str, Any]] | None = None,
                  long: tuple[list[dict[str, Any]], int] | None = None,
                  want: frozenset[str] = frozenset({"prefill", "gen"}), repeats: int,
                  n_ctx: int, n_threads: int, n_threads_batch: int) -> dict[str, Any]:
    ref = Reference(path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads_batch)
    prompt = ref.tokenize_parts(prompt_parts)
    ref.prefill_s(prompt[:64])  # warm-up
    ref.generate_s(8)
    result: dict[str, Any] = {"prompt_tokens": len(prompt)}
    if "prefill" in want:
        prefill = [len(prompt) / ref.prefill_s(prompt) for _ in range(repeats)]
        result["prefill_tokens_per_s"] = statistics.median(prefill)
    if "gen" in want:
        gen = []
        for _ in range(repeats):
            ref.prefill_s(prompt[:32])
            gen.append(gen_tokens / ref.generate_s(gen_tokens))
        result["gen_tokens_per_s"] = statistics.median(gen)
    if followup is not None:
        parts, cached = followup
        tokens = ref.tokenize_parts(parts)
        cached = min(cached, len(tokens) - 1)
        times = [ref.first_token_s(tokens[:cached], tokens[cached:]) for _ in range(repeats)]
        result["followup_new_tokens"] = len(tokens) - cached
        result["followup_ttft_s"] = statistics.median(times)
    if long is not None:
        parts, n = long
        rates = ref.long_rates(ref.tokenize_parts(parts), n)
        result["long_tail_over_head"] = rates["tokens_per_s_tail"] / rates["tokens_per_s_head"]
    if cold is not None:
        # What an app without a KV state cache pays to return to a chat: the whole prompt.
        tokens = ref.tokenize_parts(cold)
        result["cold_prefill_s"] = statistics.median(ref.prefill_s(tokens) for _ in range(repeats))
        result["cold_prompt_tokens"] = len(tokens)
    return result


def embed_reference(path: str, texts: list[str], batch: int, repeats: int,
                    n_threads: int | None = None) -> float:
    """llama-cpp-python's own Llama.embed over the same texts in-process: seconds, median of
    `repeats` (the raw llama.cpp ceiling is bench --peer-embedding's llama-embedding)."""
    threads: dict[str, Any] = ({"n_threads": n_threads, "n_threads_batch": n_threads}
                               if n_threads else {})
    with _quiet_stderr():
        llm = open_model(path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                         verbose=False, **threads)
    llm.embed(texts[:4], normalize=True, truncate=False)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            llm.embed(texts[start:start + batch], normalize=True, truncate=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
