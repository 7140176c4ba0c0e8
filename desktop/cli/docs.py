"""`hearth docs ...`: index private documents and search them from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from desktop.core.context import AppContext
from desktop.core.documents.index import IndexState
from desktop.core.documents.paths import shown
from desktop.core.errors import HearthError


def run_docs_command(args: argparse.Namespace, ctx: AppContext) -> int:
    docs = ctx.documents
    command = args.docs_command
    if command == "add":
        if args.embed_model:
            from desktop.core.models.gguf import read_gguf

            info = read_gguf(args.embed_model)  # refuse a bad file before remembering it
            if not info.is_embedding_model:
                print(f"hearth: note: {Path(args.embed_model).name} does not look like an "
                      "embedding model.", file=sys.stderr)
            ctx.settings.set("embed_model", os.path.abspath(args.embed_model))
        embedder, model_id = ctx.embedder()
        if embedder is None:
            print("hearth: no embedding model set: keyword search only. For better results add "
                  "one with --embed-model (the Recommended models list has one).",
                  file=sys.stderr)
        collection = docs.collection_id(args.collection, create=True)
        state = IndexState()
        done = threading.Event()
        result: dict[str, BaseException] = {}

        def work() -> None:
            try:
                docs.add_paths(collection, args.paths, embedder=embedder, embed_model=model_id,
                               limits=ctx.index_limits(), state=state)
            except BaseException as exc:  # noqa: BLE001 - reported below
                result["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, daemon=True).start()
        tty = sys.stderr.isatty() and not args.json
        try:
            while not done.wait(0.3):
                if tty:
                    eta = f"{state.eta_s:.0f}s" if state.eta_s is not None else "--"
                    sys.stderr.write(f"\rindexing {state.files_done}/{state.files_total} files, "
                                     f"{state.chunks_done} passages, "
                                     f"{state.chunks_per_s:.0f}/s, ETA {eta}   ")
        except KeyboardInterrupt:
            state.cancel()
            done.wait(30)
            print("\nstopped: run the same command again to continue.", file=sys.stderr)
            return 130
        if tty:
            sys.stderr.write("\n")
        if "error" in result:
            raise result["error"]
        report = {"collection": shown(args.collection), "files": state.files_total,
                  "indexed": state.indexed,
                  "unchanged": state.skipped_unchanged, "removed": state.removed,
                  "chunks": state.chunks_done,
                  "errors": [{"path": p, "error": e} for p, e in state.errors],
                  "embedding_model": model_id}
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print(f"{report['collection']}: {report['indexed']} files indexed ({state.chunks_done} "
                  f"passages), {state.skipped_unchanged} unchanged, {state.removed} removed.")
            for path, error in state.errors:
                kind = "skipped" if "skipped," in error else "failed"
                print(f"  {kind}: {path}: {error}", file=sys.stderr)
        # Scripts learn of total failure from the exit status; partial problems are listed.
        return 1 if state.errors and not (state.indexed or state.skipped_unchanged) else 0
    if command == "list":
        if args.collection:
            rows = docs.documents(docs.collection_id(args.collection))
        else:
            rows = docs.documents()
            rows = [r for r in rows if not r["collection"].startswith("chat:")]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            for row in rows:
                status = row["status"] if row["status"] == "indexed" else \
                    f"{row['status']}: {row['error']}"
                print(f"{row['collection']:16} {row['chunk_count']:6} passages  {status:8}  "
                      f"{shown(row['path'])}")
            if not rows:
                print("No documents yet. Try: hearth docs add FOLDER --collection NAME")
        return 0
    if command == "search":
        from desktop.core.documents.retrieve import search

        names = args.collection or [c["name"] for c in docs.collections()]
        collections = [docs.collection_id(n) for n in names]
        embedder, model_id = ctx.embedder() if args.mode != "bm25" else (None, None)
        vector = embedder([args.query])[0] if embedder else None
        hits = search(ctx.db, args.query, collections, k=args.k, vector=vector, model=model_id,
                      mode=args.mode)
        if args.json:
            print(json.dumps([{"path": h.path, "page": h.page, "lines": h.lines,
                               "score": h.score, "text": h.text} for h in hits],
                             ensure_ascii=False))
        else:
            for n, hit in enumerate(hits, start=1):
                print(f"[{n}] {hit.location()}  (score {hit.score:.4f})\n    "
                      + hit.text[:300].replace("\n", " ") + ("…" if len(hit.text) > 300 else ""))
            if not hits:
                print("No passage matched.")
        return 0
    # rm
    if args.collection and not args.paths:
        docs.delete_collection(docs.collection_id(args.collection))
        print(f"removed the collection {args.collection} (your files are untouched)")
        return 0
    if not args.paths:
        raise HearthError("Name the files or folders to remove, or --collection NAME.")
    collection = docs.collection_id(args.collection or "Documents")
    removed = docs.remove_paths(collection, args.paths)
    print(f"removed {removed} documents from the index (your files are untouched)")
    return 0
