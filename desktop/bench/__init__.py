"""`hearth bench`: Hearth's engine (through the worker) against an in-process loop, same run.

The in-process loop shares Hearth's model settings, so it shows what the worker adds, not
where Hearth stands against llama.cpp's own tools: `--peer-server` (bench/peer.py) does that.

Every figure is printed beside its reference and the ratio, because absolute speeds say more
about the machine than about Hearth. Warm-up first, then the median of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from desktop import paths
from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError
from desktop.core.models.gguf import read_gguf

LONG_TOKENS = 2000
FILLER = ("The old lighthouse keeper wrote in his log every evening: the weather, the ships "
          "that passed, the colour of the sea at dusk, and the number {n} he painted on the "
          "door. ")


def chat_format(model: str) -> Any:
    """The chat format the app would use for `model` (its template, or the built-in one)."""
    info = read_gguf(model)
    ids = {v: k for k, v in info.special_tokens.items()}
    return choose_format(info.architecture, info.special_tokens, info.chat_template,
                         bos_token=ids.get(info.get("tokenizer.ggml.bos_token_id", -1), ""))


def _physical_cores() -> int:
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def _long_text(tokens: int, salt: str) -> str:
    # About 38 tokens a sentence for Gemma's tokenizer; trimmed to size by the caller's count.
    sentences = max(1, tokens // 36)
    return salt + " " + "".join(FILLER.format(n=i) for i in range(sentences))


def _first_token(client: EngineClient, parts: list[dict[str, Any]], params: dict[str, Any]
                 ) -> tuple[float, dict[str, Any]]:
    """Time to the first streamed piece of a one-token reply, seen by the client, and the
    worker's done event."""
    started = time.perf_counter()
    generation = client.generate(parts, {**params, "max_tokens": 1})
    first = None
    for _ in generation:
        first = first or time.perf_counter()
    assert generation.result is not None
    return (first or time.perf_counter()) - started, generation.result


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
            ttft, done = _first_token(client, parts, greedy)
            # Only the template prefix (BOS, turn marker) may come from the cache.
            assert done["cached_tokens"] < 16, "prefill bench must start from a cold cache"
            speeds.append((done["prompt_tokens"] - done["cached_tokens"]) / done["prefill_s"])
            ttfts.append(ttft)
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
            assert generation.result is not None
            done = generation.result
            speeds.append(done["tokens_per_s"])
            if first and last and last > first:
                client_speeds.append((done["completion_tokens"] - 1) / (last - first))
        out["gen_tokens_per_s"] = statistics.median(speeds)
        out["gen_client_tokens_per_s"] = statistics.median(client_speeds) if client_speeds else None
    followup = None
    if "followup" in want:
        history = user(_long_text(args.prompt_tokens, "history"))
        reply = "".join(client.generate(render_parts(fmt, history),
                                        {**greedy, "max_tokens": 32}))
        ttfts, cached = [], 0
        for i in range(args.repeats):
            turn = [*history, {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"Question {i}: what colour was the sea at dusk, "
                     "and which number was painted on the door on the last evening?"}]
            parts = render_parts(fmt, turn)
            ttft, done = _first_token(client, parts, greedy)
            ttfts.append(ttft)
            cached = done["cached_tokens"]
            out["followup_prompt_tokens"] = done["prompt_tokens"]
            out["followup_cached_tokens"] = cached
            followup = (parts, cached)
        out["followup_ttft_s"] = statistics.median(ttfts)
    if "switch" in want:
        out.update(_switch(client, fmt, args, greedy))
    if "long" in want:
        parts = render_parts(fmt, user("Tell me a very long story."))
        generation = client.generate(parts, {**greedy, "max_tokens": LONG_TOKENS,
                                             "ignore_eos": True})
        done = generation.wait()
        out["long_parts"] = parts
        out["long_tail_over_head"] = done["tokens_per_s_tail"] / done["tokens_per_s_head"]
    return out, prompt_parts, followup


def _switch(client: EngineClient, fmt: Any, args: argparse.Namespace,
            greedy: dict[str, Any]) -> dict[str, Any]:
    """Return to a 3,000-token chat after another chat used the KV cache."""
    chats = {name: [{"role": "user", "content": _long_text(3000, f"chat {name}")}]
             for name in ("A", "B")}
    for name, turns in chats.items():
        reply = "".join(client.generate(render_parts(fmt, turns),
                                        {**greedy, "max_tokens": 8, "session": name}))
        turns.append({"role": "assistant", "content": reply})
    ttfts: list[float] = []
    parts: list[dict[str, Any]] = []
    done: dict[str, Any] = {}
    for i in range(args.repeats):
        for name in ("A", "B"):  # B runs between the timed returns to A
            turn = [*chats[name], {"role": "user", "content": f"Question {i} for {name}?"}]
            parts_now = render_parts(fmt, turn)
            ttft, result = _first_token(client, parts_now, {**greedy, "session": name})
            if name == "A":
                ttfts.append(ttft)
                parts, done = parts_now, result
    return {"switch_ttft_s": statistics.median(ttfts), "switch_parts": parts,
            "switch_prompt_tokens": done["prompt_tokens"],
            "switch_state_restored": done["state_restored"]}


def _resume(options: LoadOptions, log: Path, fmt: Any, args: argparse.Namespace
            ) -> dict[str, Any]:
    """Return to a 3,000-token chat after a restart (a new worker, the state saved when the
    first one shut down), against a new worker reading the same chat cold."""
    greedy = {"temperature": 0, "stop": fmt.stop}
    turns = [{"role": "user", "content": _long_text(3000, "resume")}]
    with tempfile.TemporaryDirectory(prefix="hearth-resume-") as states:
        saved = LoadOptions(**{**options.request(), "state_dir": states})
        first = EngineClient(log)
        try:
            first.load(saved)
            reply = "".join(first.generate(render_parts(fmt, turns),
                                           {**greedy, "max_tokens": 8, "session": "R"}))
        finally:
            first.shutdown()  # as the app quits: the worker saves the chat's state
        turns += [{"role": "assistant", "content": reply},
                  {"role": "user", "content": "What number was on the door?"}]
        parts = render_parts(fmt, turns)
        warm: list[float] = []
        cold: list[float] = []
        done: dict[str, Any] = {}
        for _ in range(args.repeats):
            for kind, opts in (("warm", saved), ("cold", LoadOptions(**{
                    **options.request(), "state_dir": None}))):
                client = EngineClient(log)
                try:
                    client.load(opts)
                    ttft, result = _first_token(client, parts, {**greedy, "session": "R"})
                finally:
                    client.kill()  # no save on exit: every repeat starts from the first state
                (warm if kind == "warm" else cold).append(ttft)
                done = result if kind == "warm" else done
    return {"resume_ttft_s": statistics.median(warm), "resume_cold_ttft_s": statistics.median(cold),
            "resume_prompt_tokens": done["prompt_tokens"],
            "resume_cached_tokens": done["cached_tokens"]}


Row = tuple[str, float, float, float | None, str]


def _ratio(ours: float | None, ref: float | None) -> float | None:
    if not ours or not ref:
        return None
    return ours / ref


def _row(name: str, ours: float, ref: float | None, note: str) -> Row:
    """A table row: Hearth's figure, the reference's (None: nothing to compare) and the ratio."""
    return (name, ours, ref or 0.0, _ratio(ours, ref), note)


def run_bench(args: argparse.Namespace, data_dir: Path) -> int:
    if getattr(args, "peer_server", None) or getattr(args, "spec", False):
        from desktop.bench.peer import run_peer_or_spec  # against llama-server / drafting

        return run_peer_or_spec(args, _bench_model(args, data_dir), paths.logs_dir(data_dir))
    parts = ("gen", "prefill", "followup", "switch", "resume", "long", "ui", "startup", "index",
             "api")
    want = {p for p in parts if getattr(args, p, False)} or set(parts)
    model_parts = want & {"gen", "prefill", "followup", "switch", "resume", "long"}
    rows: list[Row] = []
    report: dict[str, Any] = {"parts": sorted(want)}
    if model_parts:
        rows += _model_bench(args, data_dir, model_parts, report)
    if "ui" in want:
        from desktop.bench.ui import UI_P95_TARGET_S, UI_STALL_TARGET_S, bench_ui

        ui = bench_ui()
        report["ui"] = ui
        rows.append(_row("UI longest stall ms", ui["max_stall_s"] * 1e3,
                         UI_STALL_TARGET_S * 1e3, "target: ratio < 1"))
        rows.append(_row("UI p95 stall ms", ui["p95_stall_s"] * 1e3, UI_P95_TARGET_S * 1e3,
                         "target: ratio < 1"))
    if "startup" in want:
        from desktop.bench.ui import IDLE_MEMORY_TARGET_MB, STARTUP_TARGET_S, bench_startup

        startup = bench_startup(args.repeats)
        report["startup"] = startup
        rows.append(_row("start-up to window s", startup["shown_s"], STARTUP_TARGET_S,
                         "target: ratio < 1"))
        rows.append(_row("idle GUI memory MB", startup["idle_rss_mb"], IDLE_MEMORY_TARGET_MB,
                         "target: ratio < 1"))
    if "index" in want:
        from desktop.bench.docs import bench_index

        embed_model = args.embed_model
        if not embed_model:
            from desktop.core.context import AppContext

            ctx = AppContext(data_dir)
            embed_model = ctx.embed_model
            ctx.close()
        docs = bench_index(embed_model, args.repeats, paths.logs_dir(data_dir),
                           getattr(args, "peer_embedding", None), args.threads)
        report["index"] = docs
        rows.append(_row("extract files/s", docs["extract_files_per_s"], None,
                         f"{docs['files']} Markdown files, {docs['sections']} sections"))
        rows.append(_row("chunk passages/s", docs["chunk_chunks_per_s"], None,
                         f"{docs['chunks']} passages"))
        if "embed_chunks_per_s" in docs:
            rows.append(_row("embed passages/s", docs["embed_chunks_per_s"],
                             docs["embed_reference_chunks_per_s"],
                             "through the worker vs llama-cpp-python's Llama.embed in-process, "
                             f"same passages, {docs['embed_threads']} threads"))
        if "embed_ceiling_chunks_per_s" in docs:
            shapes = ", ".join(f"{b}: {r:.2f} ({docs['embed_peer_passages_per_batch'][b]}/batch)"
                               for b, r in docs["embed_peer_chunks_per_s"].items())
            rows.append(_row("embed passages/s vs raw ceiling", docs["embed_chunks_per_s"],
                             docs["embed_ceiling_chunks_per_s"],
                             f"llama-embedding's best n_ctx=n_batch=n_ubatch ({shapes}); "
                             f"min cosine {docs['embed_peer_min_cosine']:.6f}; target >= 0.9"))
        rows.append(_row("retrieval 100k, vector ms", docs["retrieval_vector_ms"], None,
                         f"first query (loads the matrix) "
                         f"{docs['retrieval_first_query_s']:.2f} s"))
        rows.append(_row("retrieval 100k, hybrid ms", docs["retrieval_hybrid_ms"], None,
                         "BM25 (FTS5) + cosine, fused"))
    if "api" in want:
        from desktop.bench.api import bench_api

        api = bench_api(_bench_model(args, data_dir), args.gen_tokens, args.repeats)
        report["api"] = api
        rows.append(_row("API streamed tok/s", api["api_tokens_per_s"], api["chat_tokens_per_s"],
                         f"{api['tokens']:.0f} tokens via /v1/chat/completions vs the chat "
                         "service; target >= 0.95"))
    report["ratios"] = {name: ratio for name, _, _, ratio, _ in rows}
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"Hearth bench ({', '.join(sorted(want))}); median of {args.repeats}")
    print("reference: an in-process llama.cpp loop with Hearth's own model settings (not "
          "llama.cpp's tools; compare with those through --peer-server)")
    print(f"{'':26}{'Hearth':>11}{'reference':>11}{'ratio':>8}  note")
    for name, ours_value, ref_value, ratio, note in rows:
        ref_text = f"{ref_value:11.3f}" if ratio is not None else f"{'-':>11}"
        ratio_text = f"{ratio:8.3f}" if ratio is not None else f"{'-':>8}"
        print(f"{name:26}{ours_value:11.3f}{ref_text}{ratio_text}  {note}")
    return 0


def _bench_model(args: argparse.Namespace, data_dir: Path) -> str:
    model = args.model
    if not model:
        from desktop.core.context import AppContext

        ctx = AppContext(data_dir)
        model = ctx.settings.get("last_model")
        ctx.close()
    if not model:
        raise HearthError("bench needs --model PATH (or a model used before).")
    return str(model)


def _model_bench(args: argparse.Namespace, data_dir: Path, want: set[str],
                 report: dict[str, Any]) -> list[Row]:
    model = _bench_model(args, data_dir)
    fmt = chat_format(model)
    threads = args.threads or _physical_cores()
    threads_batch = args.threads or os.cpu_count() or threads
    n_ctx = max(4096, args.prompt_tokens * 2 + args.gen_tokens + 256, LONG_TOKENS + 256)
    log = paths.logs_dir(data_dir) / "bench-engine.log"
    # Automatic flash attention's verdict kept as the app keeps it (engine_worker
    # flash_choice.py): measured at the first load, not again in every new worker timed here.
    options = LoadOptions(str(model), n_ctx=n_ctx, n_threads=threads,
                          n_threads_batch=threads_batch,
                          tuning_file=str(paths.logs_dir(data_dir) / "bench-tuning.json"))
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as states:
        client = EngineClient(log)
        try:
            client.load(LoadOptions(**{**options.request(), "state_dir": states}))
            ours, prompt_parts, followup = _ours(client, fmt, args, want)
        finally:
            client.shutdown()  # free the cores before the reference runs
    if "resume" in want:
        ours.update(_resume(options, log, fmt, args))

    from desktop.engine_worker.reference import run_reference

    ref = run_reference(str(model), prompt_parts, gen_tokens=args.gen_tokens,
                        followup=followup if "followup" in want else None,
                        cold=ours.pop("switch_parts", None),
                        long=(ours.pop("long_parts"), LONG_TOKENS) if "long" in want else None,
                        want=frozenset(want),
                        repeats=args.repeats, n_ctx=n_ctx, n_threads=threads,
                        n_threads_batch=threads_batch)
    report.update({"model": str(model), "threads": threads, "threads_batch": threads_batch,
                   "repeats": args.repeats, "ours": ours, "reference": ref})
    rows: list[Row] = []
    if "prefill" in want:
        rows.append(_row("prefill tok/s", ours["prefill_tokens_per_s"],
                         ref["prefill_tokens_per_s"],
                         f"{ours['prompt_tokens']}-token prompt; target >= 0.95"))
    if "gen" in want:
        rows.append(_row("generation tok/s", ours["gen_tokens_per_s"], ref["gen_tokens_per_s"],
                         f"{args.gen_tokens} tokens; target >= 0.97"))
    if "followup" in want:
        # For a time, the ratio is ours / reference: 1.0 is parity, above 1 is slower.
        rows.append(_row("follow-up TTFT s", ours["followup_ttft_s"], ref["followup_ttft_s"],
                         f"{ours['followup_cached_tokens']}/{ours['followup_prompt_tokens']} "
                         f"cached; ref = only the {ref['followup_new_tokens']} new; "
                         "target <= 1.2"))
    if "long" in want:
        rows.append(_row("2000-token reply tail/head", ours["long_tail_over_head"],
                         ref["long_tail_over_head"],
                         "speed of the last vs first 500 tokens; ratio ~1 = flat per-token cost"))
    if "resume" in want:
        rows.append(_row("resume after restart TTFT s", ours["resume_ttft_s"],
                         ours["resume_cold_ttft_s"],
                         f"a {ours['resume_prompt_tokens']}-token chat in a new worker, "
                         f"{ours['resume_cached_tokens']} tokens from the saved state; ref = the "
                         "same chat read cold by a new worker; target <= 0.2"))
    if "switch" in want:
        rows.append(_row("chat switch TTFT s", ours["switch_ttft_s"], ref["cold_prefill_s"],
                         f"back to a {ours['switch_prompt_tokens']}-token chat; ref = cold "
                         "prefill; target <= 0.2"))
    return rows
