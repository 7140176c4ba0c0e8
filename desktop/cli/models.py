"""`hearth models ...`: the model library, the Hub and downloads from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from desktop.core.context import AppContext
from desktop.core.errors import HearthError
from desktop.core.models import hub
from desktop.core.models.download import DownloadState
from desktop.core.models.download_queue import DownloadJob, run_job
from desktop.core.models.fit import detect_memory, estimate_from_size, judge, recommend
from desktop.core.models.token import forget_token, get_token, set_token


def _print(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=None))
    else:
        print("\n".join(lines))


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def run_models_command(args: argparse.Namespace, ctx: AppContext) -> int:
    command = args.models_command
    library = ctx.library
    if command == "remote":
        from desktop.cli.remote import run_remote_command

        return run_remote_command(args, ctx)
    if command == "list":
        ctx.ensure_starter()
        entries = [e.as_dict() for e in library.list()]
        _print(args, entries, [
            f"{e['name']}  {e.get('architecture')}  {e.get('parameter_label')}  "
            f"{e.get('quantization')}  ctx {e.get('context_length')}  "
            f"{_size(e.get('file_size', 0))}"
            f"{'  (base model, no chat template)' if e['base_model'] else '  chat template'}"
            f"{'' if e['exists'] else '  FILE MISSING'}\n    {e['path']}" for e in entries
        ] or ["No models yet. Try: hearth models search llama"])
        return 0
    if command == "add":
        for path in args.paths:
            entry = library.add(path)
            print(f"added {entry.name}: {entry.path}")
        return 0
    if command == "info":
        from desktop.core.models.gguf import read_gguf

        print(json.dumps(read_gguf(args.path).summary(), indent=2))
        return 0
    if command == "scan":
        from desktop.core.models.scan import scan, with_projectors

        found = with_projectors(scan())
        known = {e.path for e in library.list()}
        rows: list[dict[str, Any]] = [
                {"app": app, "path": str(path), "in_library": str(path) in known,
                 "mmproj": str(mmproj) if mmproj else None}  # a vision model's projector
                for app, path, mmproj in found]
        if args.add:
            for row in rows:
                if not row["in_library"]:
                    try:
                        library.add(row["path"], source=row["app"])
                        row["in_library"] = True
                    except HearthError as exc:
                        row["error"] = exc.message
        _print(args, rows, [f"{r['app']:18} {r['path']}{'  (in library)' if r['in_library'] else ''}"
                            f"{'  + ' + Path(r['mmproj']).name if r['mmproj'] else ''}"
                            for r in rows] or ["No models from other apps were found."])
        return 0
    if command == "search":
        results = hub.search(args.query, sort=args.sort, limit=args.limit, token=get_token())
        _print(args, results, [
            f"{r['repo']:60} {r['downloads'] or 0:>10,} downloads  {r['likes'] or 0:>6} likes  "
            f"{(r['last_modified'] or '')[:10]}  {r['license'] or ''}{'  gated' if r['gated'] else ''}"
            for r in results] or ["Nothing found."])
        return 0
    if command == "files":
        listing = hub.repo_files(args.repo, token=get_token())
        memory = detect_memory()
        rows = []
        candidates = []
        for model in listing.models:
            fit = judge(estimate_from_size(model.size, model.quant, args.ctx), memory)
            candidates.append((model.name, model.quant, fit))
            rows.append({**hub.describe(model), "fit": fit.as_dict()})
        best = recommend(candidates)
        for row in rows:
            row["recommended"] = row["name"] == best
        _print(args, {"repo": listing.summary, "files": rows, "recommended": best}, [
            f"{'*' if r['recommended'] else ' '} {r['name']:55} {r['quantization'] or '?':8} "
            f"{_size(r['size']):>9}  {r['fit']['text']}\n      {r['quality']}" for r in rows
        ] + ([f"* recommended for this machine: {best}"] if best else []))
        return 0
    if command == "recommended":
        from desktop.core.models.catalog import load_catalog

        memory = detect_memory()
        rows = []
        for pinned in load_catalog():
            file = pinned.model_file()
            fit = judge(estimate_from_size(file.size, file.quant, args.ctx), memory)
            rows.append({**pinned.as_dict(), "quantization": file.quant, "fit": fit.as_dict()})
        _print(args, rows, [
            f"{r['name']:28} {r['kind']:9} {_size(r['size']):>9}  {r['fit']['text']}\n"
            f"    {r['description']}\n    hearth models pull {r['repo']} {r['file']}"
            for r in rows])
        return 0
    if command == "pull":
        return _pull(args, ctx)
    if command == "token":
        if args.forget:
            forget_token()
            print("The Hugging Face token was removed.")
            return 0
        token = sys.stdin.readline().strip() if not sys.stdin.isatty() else __import__(
            "getpass").getpass("Hugging Face token: ")
        if set_token(token):
            print("Token stored in the system keychain.")
        else:
            print("No system keychain is available: the token is kept for this run only.",
                  file=sys.stderr)
        return 0
    # rm
    matches = [e for e in library.list() if args.name in (e.name, e.path, Path(e.path).name)]
    if not matches:
        raise HearthError(f"No model named {args.name} in the library.")
    for entry in matches:
        library.remove(entry.path)
        path = Path(entry.path)
        if args.delete_file and path.is_file():
            if not path.resolve().is_relative_to(ctx.models_dir.resolve()):
                raise HearthError(f"{path} is not in Hearth's models folder; Hearth deletes only "
                                  "files it downloaded. It was removed from the library.")
            freed = path.stat().st_size
            path.unlink()
            print(f"deleted {path} ({_size(freed)} freed)")
        else:
            print(f"removed {entry.name} from the library (the file stays: {entry.path})")
    return 0


def _pull(args: argparse.Namespace, ctx: AppContext) -> int:
    from desktop.core.models.catalog import find_entry

    entry = find_entry(args.repo, args.file)
    if entry is not None:
        model = entry.model_file()  # pinned commit and the SHA-256 Hearth ships
    else:
        listing = hub.repo_files(args.repo, token=get_token())
        found = next((m for m in listing.models if args.file in (m.name, *m.files)), None)
        if found is None:
            names = ", ".join(m.name for m in listing.models) or "none"
            raise HearthError(f"{args.repo} has no GGUF file {args.file}. Files: {names}")
        model = found
    job = DownloadJob(args.repo, model)
    job.state.total = model.size
    bar = sys.stderr.isatty() and not args.json
    result: dict[str, Any] = {}

    def show() -> None:
        s = job.state
        eta = f"{s.eta_s:.0f}s" if s.eta_s is not None else "--"
        sys.stderr.write(f"\r{model.name}: {s.fraction * 100:5.1f}%  {_size(s.done)} / "
                         f"{_size(s.total)}  {s.speed / 1e6:6.1f} MB/s  ETA {eta}   ")
        sys.stderr.flush()

    import threading

    done = threading.Event()

    def work() -> None:
        try:
            result["path"] = run_job(job, ctx.models_dir, ctx.library, get_token())
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    try:
        while not done.wait(0.25):
            if bar:
                show()
    except KeyboardInterrupt:
        job.state.pause()
        done.wait(5)
        print(f"\npaused: run the same command again to resume ({_size(job.state.done)} kept).",
              file=sys.stderr)
        return 130
    if bar:
        show()
        sys.stderr.write("\n")
    if "error" in result:
        raise result["error"]
    state: DownloadState = job.state
    _print(args, {"path": str(result["path"]), "size": model.size, "sha256": model.sha256,
                  "verified": all(model.sha256.values()), "state": state.status},
           [f"downloaded and verified: {result['path']}"])
    return 0
