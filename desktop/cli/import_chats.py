"""`hearth history import PATH [--from APP] [--dry-run] [--json]`: chats (and GPT4All's LocalDocs
collections) from GPT4All, ChatGPT, LM Studio, Jan and Open WebUI."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from desktop.core.context import AppContext
from desktop.core.importers import APPS, make_preview, run_import
from desktop.core.importers.apply import ALREADY, EMPTY, NEW, ImportReport, Preview


def add_import_parser(history_sub: Any) -> None:
    command = history_sub.add_parser(
        "import", help="import chats from GPT4All, ChatGPT, LM Studio, Jan or Open WebUI")
    command.add_argument("path", help="a file (conversations.json, a .chat, an export) or a "
                         "folder (GPT4All's or Jan's data folder, LM Studio's conversations)")
    command.add_argument("--from", dest="source_app", choices=APPS,
                         help="the app it comes from (detected when left out)")
    command.add_argument("--dry-run", action="store_true",
                         help="show what would be imported, change nothing")
    command.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_import(args: argparse.Namespace, ctx: AppContext) -> int:
    preview = make_preview(ctx, args.path, args.source_app)
    if args.dry_run:
        if args.json:
            print(json.dumps({**preview.as_dict(), "dry_run": True}, ensure_ascii=False))
        else:
            _print_preview(preview)
        return 0
    report = run_import(ctx, preview)
    if not args.json:
        _print_preview(preview, heading=False)
    _wait_for_indexing(report, quiet=args.json)
    if args.json:
        print(json.dumps(_report_dict(preview, report), ensure_ascii=False))
    else:
        _print_report(preview, report)
    nothing = not (report.added or report.already or report.empty or report.collections)
    return 1 if nothing and report.problems else 0


def _print_preview(preview: Preview, heading: bool = True) -> None:
    total = len(preview.items)
    print(f"{preview.app_name}: {total} conversation{'s' * (total != 1)} in "
          f"{preview.found.source} ({preview.count(NEW)} new, {preview.count(ALREADY)} "
          f"already imported, {preview.count(EMPTY)} empty).")
    if heading:
        marks = {NEW: "+", ALREADY: "=", EMPTY: "-"}
        for item in preview.items:
            count = len(item.conversation.messages)
            print(f"  {marks[item.status]} {item.title}  [{count} message{'s' * (count != 1)}"
                  f"{', ' + item.status if item.status != NEW else ''}]")
        for entry in preview.collections:
            missing = f", {len(entry.missing)} folder(s) missing" if entry.missing else ""
            print(f"  LocalDocs “{entry.collection.name}”: {len(entry.collection.folders)} "
                  f"folder(s){missing}")
        for problem in preview.problems:
            print(f"  could not read: {problem}", file=sys.stderr)


def _wait_for_indexing(report: ImportReport, quiet: bool) -> None:
    """LocalDocs folders are indexed by the app's indexer; the command waits for it, so the
    collections are searchable when it returns (Ctrl+C stops; a later import resumes)."""
    for job in report.jobs:
        try:
            while not job.done.wait(0.5):
                if not quiet and sys.stderr.isatty():
                    state = job.state
                    sys.stderr.write(f"\rindexing {state.files_done}/{state.files_total} "
                                     "files   ")
        except KeyboardInterrupt:
            job.state.cancel()
            job.done.wait(30)
            raise


def _report_dict(preview: Preview, report: ImportReport) -> dict[str, Any]:
    collections = []
    for entry, job in zip(report.collections, _jobs_for(report), strict=True):
        state = job.state if job is not None else None
        collections.append({**entry, "indexed": state.indexed if state else 0,
                            "unchanged": state.skipped_unchanged if state else 0,
                            "errors": [{"path": p, "error": e} for p, e in state.errors]
                            if state else []})
    return {**preview.as_dict(), "dry_run": False,
            "imported": [{"conversation_id": cid, "title": title, "messages": n}
                         for cid, title, n in report.added],
            "already_imported": report.already, "empty": report.empty,
            "messages": report.messages, "collections": collections,
            "problems": [{"where": p.where, "error": p.message} for p in report.problems]}


def _jobs_for(report: ImportReport) -> list[Any]:
    """Each collection's index job, or None where nothing was queued (no folder left)."""
    jobs = iter(report.jobs)
    return [next(jobs) if entry["collection_id"] is not None else None
            for entry in report.collections]


def _print_report(preview: Preview, report: ImportReport) -> None:
    added = len(report.added)
    print(f"Imported {added} conversation{'s' * (added != 1)} ({report.messages} messages); "
          f"{report.already} already imported, {report.empty} empty skipped.")
    for entry, job in zip(report.collections, _jobs_for(report), strict=True):
        if job is None:
            continue
        state = job.state
        print(f"LocalDocs “{entry['name']}” → Hearth collection: {state.indexed} files indexed, "
              f"{state.skipped_unchanged} unchanged.")
        for path, error in state.errors:
            print(f"  not indexed: {path}: {error}", file=sys.stderr)
    for problem in report.problems:
        print(f"could not read: {problem}", file=sys.stderr)
