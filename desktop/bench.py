"""`hearth bench`: Hearth's engine (through the worker) against raw llama.cpp, same run.

Every figure is printed beside its reference and the ratio, because absolute speeds say more
about the machine than about Hearth. Warm-up first, then the median of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from desktop import paths
from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError
from desktop.core.models.gguf import read_gguf

FILLER = ("The old lighthouse keeper wrote in his log every evening: the weather, the ships "
          "that passed, the colour of the sea at dusk, and the number {n} he painted on the "
          "door. ")


def _physical_cores() -> int:
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def _long_text(tokens: int, salt: str) -> str:
    # About 38 tokens a sentence for Gemma's tokenizer; trimmed to size by the caller's count.
    sentences = max(1, tokens // 36)
    return salt + " " + "".join(FILLER.format(n=i) for i in range(sentences))


def _ours(client: EngineClient, fmt: Any, args: argparse.Namespace, want: set[str]
          ) -> tuple[dict[str, Any], list[dict[str, Any]], tuple[list[dict[str, Any]], int] | None]:
    greedy = {"temperature": 0, "stop": fmt.stop}
    user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    client.generate(render_parts(fmt, user("warm up")), {**greedy, "max_tokens": 8}).wait()
    out: dict[str, Any] = {}
    prompt_parts = render_parts(fmt, user(_long_text(args.prompt_tokens, "run 0")))
    if "prefill" in want:
        speeds, ttfts = [], []
        for i in range(args.repeats):
            # A different first word each run: nothing of the prompt is in the KV cache.
            parts = render_parts(fmt, user(_long_text(args.prompt_tokens, f"run {i + 1}")))
            started = time.perf_counter()
            generation = client.generate(parts, {**greedy, "max_tokens": 1})
            first = None
            for _ in generation:
                first = first or time.perf_counter()
            done = generation.result
            # Only the template prefix (BOS, turn marker) may come from the cache.
            assert done["cached_tokens"] < 16, "prefill bench must start from a cold cache"
            speeds.append((done["prompt_tokens"] - done["cached_tokens"]) / done["prefill_s"])
            ttfts.append((first or time.perf_counter()) - started)
        out["prompt_tokens"] = done["prompt_tokens"]
        out["prefill_tokens_per_s"] = statistics.median(speeds)
        out["prefill_client_ttft_s"] = statistics.median(ttfts)
    if "gen" in want:
        speeds, client_speeds = [], []
        for _ in range(args.repeats):
            generation = client.generate(render_parts(fmt, user("Tell me a story.")),
                                         {**greedy, "max_tokens": args.gen_tokens,
                                          "ignore_eos": True})
            first = last = None
            for _ in generation:
                last = time.perf_counter()
                first = first or last
            done = generation.result
            speeds.append(done["tokens_per_s"])
            if first and last and last > first:
                client_speeds.append((done["completion_tokens"] - 1) / (last - first))
        out["gen_tokens_per_s"] = statistics.median(speeds)
        out["gen_client_tokens_per_s"] = statistics.median(client_speeds) if client_speeds else None
    followup = None
    if "followup" in want:
        history = user(_long_text(args.prompt_tokens, "history"))
        first = client.generate(render_parts(fmt, history), {**greedy, "max_tokens": 32})
        reply = "".join(first)
        ttfts, cached = [], 0
        for i in range(args.repeats):
            turn = [*history, {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"Question {i}: what colour was the sea at dusk, "
                     "and which number was painted on the door on the last evening?"}]
            parts = render_parts(fmt, turn)
            started = time.perf_counter()
            generation = client.generate(parts, {**greedy, "max_tokens": 1})
            got = None
            for _ in generation:
                got = got or time.perf_counter()
            done = generation.result
            ttfts.append((got or time.perf_counter()) - started)
            cached = done["cached_tokens"]
            out["followup_prompt_tokens"] = done["prompt_tokens"]
            out["followup_cached_tokens"] = cached
            followup = (parts, cached)
        out["followup_ttft_s"] = statistics.median(ttfts)
    return out, prompt_parts, followup


def _ratio(ours: float | None, ref: float | None, invert: bool = False) -> float | None:
    if not ours or not ref:
        return None
    return ref / ours if invert else ours / ref


def run_bench(args: argparse.Namespace, data_dir: Path) -> int:
    model = args.model
    if not model:
        from desktop.core.context import AppContext

        ctx = AppContext(data_dir)
        model = ctx.settings.get("last_model")
        ctx.close()
    if not model:
        raise HearthError("bench needs --model PATH (or a model used before).")
    info = read_gguf(model)
    ids = {v: k for k, v in info.special_tokens.items()}
    fmt = choose_format(info.architecture, info.special_tokens, info.chat_template,
                        bos_token=ids.get(info.get("tokenizer.ggml.bos_token_id", -1), ""))
    chosen = {p for p in ("gen", "prefill", "followup") if getattr(args, p, False)}
    want = chosen or {"gen", "prefill", "followup"}
    threads = args.threads or _physical_cores()
    threads_batch = args.threads or os.cpu_count() or threads
    n_ctx = max(4096, args.prompt_tokens * 2 + args.gen_tokens + 256)

    client = EngineClient(paths.logs_dir(data_dir) / "bench-engine.log")
    try:
        client.load(LoadOptions(str(model), n_ctx=n_ctx, n_threads=threads,
                                n_threads_batch=threads_batch))
        ours, prompt_parts, followup = _ours(client, fmt, args, want)
    finally:
        client.shutdown()  # free the cores before the reference runs

    from desktop.engine_worker.reference import run_reference

    ref = run_reference(str(model), prompt_parts, gen_tokens=args.gen_tokens,
                        followup=followup if "followup" in want else None,
                        repeats=args.repeats, n_ctx=n_ctx, n_threads=threads,
                        n_threads_batch=threads_batch)
    rows = []
    if "prefill" in want:
        rows.append(("prefill tok/s", ours["prefill_tokens_per_s"], ref["prefill_tokens_per_s"],
                     _ratio(ours["prefill_tokens_per_s"], ref["prefill_tokens_per_s"])))
    if "gen" in want:
        rows.append(("generation tok/s", ours["gen_tokens_per_s"], ref["gen_tokens_per_s"],
                     _ratio(ours["gen_tokens_per_s"], ref["gen_tokens_per_s"])))
    if "followup" in want:
        # For a time, the ratio is ours / reference: 1.0 is parity, above 1 is slower.
        rows.append(("follow-up TTFT s", ours["followup_ttft_s"], ref["followup_ttft_s"],
                     _ratio(ours["followup_ttft_s"], ref["followup_ttft_s"])))
    report = {
        "model": str(model),
        "threads": threads,
        "threads_batch": threads_batch,
        "repeats": args.repeats,
        "ours": ours,
        "reference": ref,
        "ratios": {name: ratio for name, _, _, ratio in rows},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Hearth bench: {Path(model).name}, {threads} threads (batch {threads_batch}), "
          f"median of {args.repeats}")
    print(f"{'':24}{'Hearth':>12}{'llama.cpp':>12}{'ratio':>8}")
    for name, a, b, r in rows:
        print(f"{name:24}{a:12.3f}{b:12.3f}{(r or 0):8.3f}")
    if "followup" in want:
        print(f"follow-up: {ours['followup_cached_tokens']} of {ours['followup_prompt_tokens']} "
              f"prompt tokens came from the KV cache; the reference processed only the "
              f"{ref['followup_new_tokens']} new tokens")
    return 0
