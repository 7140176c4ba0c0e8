"""`bench --spec`: replies with and without speculative decoding, through the worker.

Document answers over the passages Hearth's own index retrieves, and chat prompts (greedy and
sampled), each asked with and without drafting back to back, alternating which goes first.
With --draft-model PATH the draft model is loaded beside the model, and two more rows (document
answers, chat greedy) draft with it as well as by prompt lookup, against drafting off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from desktop.bench import _physical_cores, chat_format
from desktop.bench.peer import _pair
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError


def _doc_prompts(fmt: Any, limit: int) -> list[list[dict[str, Any]]]:
    """Questions over the test corpus, each with the passages Hearth's own index retrieves
    (BM25, k=6), put into the turn the way ChatService.attach_excerpts does."""
    try:
        from tests.doc_corpus import QUESTIONS, write_corpus
    except ImportError as exc:
        raise HearthError("bench --spec needs the source checkout (tests/doc_corpus.py).") from exc
    from desktop.core.chat.service import excerpts_turn
    from desktop.core.documents.index import DocumentIndex
    from desktop.core.documents.retrieve import search
    from desktop.core.store.db import Database

    prompts = []
    with tempfile.TemporaryDirectory(prefix="hearth-bench-spec-") as tmp:
        folder = Path(tmp) / "docs"
        write_corpus(folder)
        db = Database(Path(tmp) / "hearth.db")
        try:
            index = DocumentIndex(db)
            collection = index.create_collection("bench")
            index.add_paths(collection, [folder])
            for question, _ in QUESTIONS[:limit]:
                hits = search(db, question, [collection], k=6, mode="bm25")
                content = excerpts_turn(hits, question)
                prompts.append(render_parts(fmt, [{"role": "user", "content": content}]))
        finally:
            db.close()
    return prompts


def run_spec_bench(args: argparse.Namespace, model: str, log_dir: Path) -> dict[str, Any]:
    """Document answers (greedy) with and without drafting, through the worker, interleaved;
    and chat prompts, greedy and sampled (where drafts rarely match, drafting must cost
    nothing)."""
    fmt = chat_format(model)
    threads = args.threads or _physical_cores()
    draft = getattr(args, "draft_model", None)
    options = LoadOptions(model, n_ctx=4096, n_threads=threads,
                          n_threads_batch=args.threads or os.cpu_count() or threads,
                          n_gpu_layers=int(getattr(args, "gpu_layers", 0) or 0),
                          draft_path=str(Path(draft).expanduser()) if draft else None,
                          tuning_file=str(log_dir / "bench-tuning.json"))
    greedy = {"temperature": 0, "stop": fmt.stop, "max_tokens": args.gen_tokens}
    docs = _doc_prompts(fmt, max(4, args.repeats * 2))
    chats = [render_parts(fmt, [{"role": "user", "content": text}]) for text in (
        "Write a short poem about autumn.", "Explain how a bicycle gear works.",
        "Tell me a story about a fox.", "What should I cook tonight?")]
    client = EngineClient(log_dir / "bench-spec-engine.log")
    rows = []
    report: dict[str, Any] = {"model": model, "threads": threads, "questions": len(docs)}
    try:
        loaded = client.load(options)["info"]
        if draft:
            report["draft_model"] = loaded.get("draft_model")
            if loaded.get("draft_note"):
                raise HearthError(loaded["draft_note"])
        client.generate(chats[0], {**greedy, "max_tokens": 8}).wait()
        sampled = {"temperature": 0.8, "top_p": 0.95, "seed": 11}
        # The prompt-lookup rows leave a loaded draft model out; its own rows follow.
        lookup: dict[str, Any] = {"use_draft": False}
        rows_asked: list[tuple[str, list[Any], bool, dict[str, Any]]] = [
            ("document answers", docs, True, lookup),
            ("chat, greedy", chats, False, lookup),
            # A small model's greedy chat repeats itself (drafts hit); sampled, it does not.
            ("chat, sampled t=0.8", chats, False, {**sampled, **lookup}),
            # Hot sampling: drafts miss far more often (about half were accepted here, against
            # 94% greedy); drafting must then cost (almost) nothing (issue target >= 0.97x).
            ("chat, hot sampling t=1.5", chats, False,
             {**sampled, "temperature": 1.5, "min_p": 0.0,
              **lookup}),
        ]
        if draft:
            rows_asked += [("document answers, draft model", docs, True, {}),
                           ("chat greedy, draft model", chats, False, {})]
        for name, prompts, documents, extra in rows_asked:
            plain, spec, accepted, drafted, tokens = [], [], 0, 0, []
            by_model = [0, 0]  # of those, drafted and accepted from the draft model
            for i, parts in enumerate(prompts):
                order = (False, True) if i % 2 == 0 else (True, False)
                got: dict[bool, dict[str, Any]] = {}
                for on in order:
                    got[on] = client.generate(parts, {**greedy, **extra, "speculative": on,
                                                      "documents": documents and on}).wait()
                if got[False]["completion_tokens"] < 16:
                    continue  # too short a reply to time
                plain.append(got[False]["tokens_per_s"])
                spec.append(got[True]["tokens_per_s"])
                accepted += got[True]["spec_accepted"]
                drafted += got[True]["spec_drafted"]
                from_model: dict[str, int] = got[True].get("spec_source", {}).get(
                    "draft_model", {})
                by_model[0] += from_model.get("drafted", 0)
                by_model[1] += from_model.get("accepted", 0)
                tokens.append(got[True]["completion_tokens"])
            if not plain:
                continue
            row = _pair(f"{name} tok/s", spec, plain,
                        f"{len(plain)} replies, median {statistics.median(tokens):.0f} tokens; "
                        f"{accepted}/{drafted} drafted tokens accepted "
                        f"({accepted / max(drafted, 1):.0%})"
                        + (f", {by_model[1]}/{by_model[0]} from the draft model"
                           if "draft model" in name else "") + "; peer = drafting off")
            rows.append(row)
    finally:
        client.shutdown()
    report["rows"] = rows
    return report
