"""Command-line front end: the same core as the GUI, used by people, tests and benchmarks."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from desktop import __version__, paths
from desktop.core.errors import HearthError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth", description="Private, on-device AI chat.")
    parser.add_argument("--version", action="version", version=f"Hearth {__version__}")
    parser.add_argument("--data-dir", help="where chats, settings and models live "
                        f"(default: ${paths.DATA_DIR_ENV} or the platform's user data dir)")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="open the window (the default)")
    gui.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    gui.add_argument("--model", help=argparse.SUPPRESS)

    chat = sub.add_parser("chat", help="send a message and stream the reply")
    chat.add_argument("message")
    chat.add_argument("--model", help="GGUF file (default: the model used last)")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--new", action="store_true", help="start a new conversation (default)")
    which.add_argument("--continue", dest="cont", action="store_true",
                       help="continue the most recent conversation")
    which.add_argument("--conversation", type=int, metavar="ID")
    chat.add_argument("--system", help="system prompt for a new conversation")
    chat.add_argument("--temperature", type=_within(float, 0, 5), help="0 = always the likeliest")
    chat.add_argument("--top-p", type=_within(float, 0, 1))
    chat.add_argument("--top-k", type=_within(int, 0), help="0 = off")
    chat.add_argument("--min-p", type=_within(float, 0, 1))
    chat.add_argument("--repeat-penalty", type=_within(float, 0.01, 5), help="1 = off")
    chat.add_argument("--max-tokens", type=_within(int, 0), help="0 = until the context is full")
    chat.add_argument("--seed", type=int)
    chat.add_argument("--ctx", type=_within(int, 256), help="context length in tokens")
    chat.add_argument("--collection", action="append", default=[],
                      help="answer from this document collection (repeatable)")
    chat.add_argument("--image", action="append", default=[], metavar="PATH",
                      help="send an image with the message (repeatable; needs a vision model)")
    chat.add_argument("--mmproj", metavar="PATH",
                      help="the vision projector of --model (kept with it in the library)")
    chat.add_argument("--json", action="store_true", help="print one JSON object at the end")
    chat.add_argument("--show-thinking", action="store_true",
                      help="stream a reasoning model's thinking to stderr")
    chat.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                      help="turn a reasoning model's thinking on or off for this chat "
                      "(where its template has a switch)")
    chat.add_argument("--effort", choices=["low", "medium", "high"],
                      help="reasoning effort for this chat (models that take one: gpt-oss)")
    from desktop.cli.remote import add_chat_arguments, add_models_parser

    add_chat_arguments(chat)  # --remote URL --remote-model NAME --api-key-env VAR

    history = sub.add_parser("history", help="list, show and export conversations")
    hsub = history.add_subparsers(dest="history_command", required=True)
    hlist = hsub.add_parser("list")
    hlist.add_argument("--json", action="store_true")
    hshow = hsub.add_parser("show")
    hshow.add_argument("id", type=int)
    hshow.add_argument("--json", action="store_true")
    hexport = hsub.add_parser("export")
    hexport.add_argument("id", type=int)
    hexport.add_argument("--format", choices=["md", "json"], default="md")
    hexport.add_argument("-o", "--output")
    hexport.add_argument("--with-thinking", action="store_true",
                         help="include reasoning models' thinking")
    hsearch = hsub.add_parser("search")
    hsearch.add_argument("query")
    hsearch.add_argument("--json", action="store_true")
    from desktop.cli.import_chats import add_import_parser

    add_import_parser(hsub)  # `history import PATH [--from APP] [--dry-run] [--json]`

    models = sub.add_parser("models", help="the local model library")
    msub = models.add_subparsers(dest="models_command", required=True)
    mlist = msub.add_parser("list")
    mlist.add_argument("--json", action="store_true")
    madd = msub.add_parser("add")
    madd.add_argument("paths", nargs="+")
    minfo = msub.add_parser("info")
    minfo.add_argument("path")
    mscan = msub.add_parser("scan", help="find GGUF files other apps downloaded")
    mscan.add_argument("--json", action="store_true")
    mscan.add_argument("--add", action="store_true", help="add everything found")
    msearch = msub.add_parser("search", help="search the Hugging Face Hub for GGUF models")
    msearch.add_argument("query")
    msearch.add_argument("--limit", type=int, default=20)
    msearch.add_argument("--sort", choices=["downloads", "recent", "likes", "trending"],
                         default="downloads")
    msearch.add_argument("--json", action="store_true")
    mfiles = msub.add_parser("files", help="the GGUF files of a Hub repository, with fit labels")
    mfiles.add_argument("repo")
    mfiles.add_argument("--ctx", type=int, default=4096)
    mfiles.add_argument("--json", action="store_true")
    mrec = msub.add_parser("recommended", help="Hearth's recommended models, with fit labels")
    mrec.add_argument("--ctx", type=int, default=4096)
    mrec.add_argument("--json", action="store_true")
    mpull = msub.add_parser("pull", help="download a model file (resumable, verified)")
    mpull.add_argument("repo")
    mpull.add_argument("file")
    mpull.add_argument("--json", action="store_true")
    mrm = msub.add_parser("rm", help="remove a model from the library")
    mrm.add_argument("name")
    mrm.add_argument("--delete-file", action="store_true",
                     help="also delete the file (only files in Hearth's models folder)")
    mtoken = msub.add_parser("token", help="store the Hugging Face token in the OS keychain")
    mtoken.add_argument("--forget", action="store_true")
    add_models_parser(msub)  # models remote add|list|rm

    docs = sub.add_parser("docs", help="private documents: add, list, search, remove")
    dsub = docs.add_subparsers(dest="docs_command", required=True)
    dadd = dsub.add_parser("add", help="index files and folders into a collection")
    dadd.add_argument("paths", nargs="+")
    dadd.add_argument("--collection", default="Documents")
    dadd.add_argument("--embed-model", help="GGUF embedding model (remembered as a setting)")
    dadd.add_argument("--json", action="store_true")
    dlist = dsub.add_parser("list")
    dlist.add_argument("--collection")
    dlist.add_argument("--json", action="store_true")
    dsearch = dsub.add_parser("search")
    dsearch.add_argument("query")
    dsearch.add_argument("--collection", action="append", default=[])
    dsearch.add_argument("-k", type=int, default=5)
    dsearch.add_argument("--mode", choices=["hybrid", "bm25", "vector"], default="hybrid")
    dsearch.add_argument("--json", action="store_true")
    drm = dsub.add_parser("rm", help="remove files/folders from a collection, or a collection")
    drm.add_argument("paths", nargs="*")
    drm.add_argument("--collection", default=None)

    bench = sub.add_parser("bench", help="measure Hearth against llama.cpp (in-process loop, or llama-server with --peer-server)")
    bench.add_argument("--model", required=False)
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--threads", type=int)
    bench.add_argument("--prompt-tokens", type=int, default=2000)
    bench.add_argument("--gen-tokens", type=int, default=256)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--embed-model", help="embedding GGUF for the index part")
    bench.add_argument("--peer-server", metavar="PATH",
                       help="llama-server binary: Hearth against it, request by request")
    bench.add_argument("--peer-bench", metavar="PATH", help="llama-bench binary (with --peer-server)")
    bench.add_argument("--peer-embedding", metavar="PATH",
                       help="llama-embedding binary: the raw embedding ceiling (with --index)")
    bench.add_argument("--spec", action="store_true",
                       help="document answers with and without speculative decoding")
    bench.add_argument("--draft-model", metavar="PATH",
                       help="with --spec: add rows drafting with this small model")
    bench.add_argument("--gpu-layers", type=int, default=0, metavar="N",
                       help="layers offloaded to the GPU, on both sides (default 0: CPU)")
    bench.add_argument("--flash-attn", choices=("auto", "on", "off"), default="auto",
                       help="flash attention on both sides of --peer-server (default auto, "
                            "as llama-server's)")
    for part in ("gen", "prefill", "followup", "switch", "resume", "long", "ui", "startup", "index",
                 "api"):
        bench.add_argument(f"--{part}", action="store_true", help=f"run only the {part} part(s)")

    from desktop.cli.serve import add_serve_parser

    add_serve_parser(sub)
    from desktop.ui.screens import add_parser as add_screens_parser

    add_screens_parser(sub)  # `screenshots --out DIR` (Qt is imported only when it runs)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    if "--self-test" in argv and "gui" not in argv:
        # `hearth --self-test [--model PATH]`, as the frozen app takes it
        at = argv.index("--self-test")
        argv = [*argv[:at], "gui", *argv[at:]]
    args = parser.parse_args(argv)
    if args.command in (None, "gui"):
        from desktop.app import run_gui

        return run_gui(args)
    if args.command == "screenshots":
        from desktop.ui.screens import cmd_screenshots

        return cmd_screenshots(args)
    try:
        data_dir = paths.data_dir(args.data_dir)
        handler = {"chat": cmd_chat, "history": cmd_history, "models": cmd_models,
                   "docs": cmd_docs, "bench": cmd_bench, "serve": cmd_serve}[args.command]
        return handler(args, data_dir)
    except HearthError as exc:
        print(f"hearth: {exc.message}", file=sys.stderr)
        if exc.details:
            print(exc.details, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhearth: stopped.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`hearth models list | head`): not an error worth a traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except sqlite3.Error as exc:
        print(f"hearth: {_database_trouble(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # after BrokenPipeError, which is one
        # A file the user named (an export path, a folder) that cannot be written or read.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"hearth: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def _database_trouble(exc: sqlite3.Error) -> str:
    """One sentence for a database failure the store did not put in words (Database turns
    read-only files and full disks into StoreError); what was saved stays."""
    return f"The chat database could not be used ({exc}); everything saved before is intact."


def _within(kind: type, low: float, high: float | None = None) -> Any:
    """An argparse type that also checks the range, so a typo is an error, not a weird reply."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a value {bounds}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


@contextmanager
def _context(data_dir: Path) -> Iterator[Any]:
    """The app's core for one command, closed (worker shut down, database closed) after it."""
    from desktop.core.context import AppContext  # imported lazily to keep --help fast

    ctx = AppContext(data_dir)
    if ctx.settings.problem:
        print(f"hearth: {ctx.settings.problem}", file=sys.stderr)  # said once: it was set aside
    try:
        yield ctx
    finally:
        ctx.close()


def cmd_chat(args: argparse.Namespace, data_dir: Path) -> int:
    import os

    from desktop.cli.remote import announce, chat_model_ref
    from desktop.core.chat.service import ChatService

    with _context(data_dir) as ctx:
        service = ChatService(ctx)
        remote_ref = chat_model_ref(args, ctx)  # remote:MODEL@URL, or None for a GGUF
        if not (args.model or remote_ref) and not ctx.settings.get("last_model"):
            ctx.ensure_starter()
            latest = ctx.library.latest_chat_model()
            if latest is not None and not ctx.settings.get("last_model"):
                ctx.settings.set("last_model", latest.path)  # same choice as the window's
        model_path = remote_ref or (
            os.path.abspath(os.path.expanduser(args.model)) if args.model else None)
        if model_path and not remote_ref:
            service.check_model(model_path)  # a bad file is refused before a chat is made
        if args.mmproj:
            from desktop.core.models.vision_pairs import attach_projector

            if not model_path or remote_ref:
                raise HearthError("--mmproj pairs a projector with a GGUF: pass --model too.")
            attach_projector(ctx.library, model_path, args.mmproj)
        chats = ctx.chats
        if args.conversation is None and not (args.cont and chats.latest_conversation()) \
                and not (model_path or ctx.settings.get("last_model")):
            raise HearthError("No chat model is chosen: pick one in the window or pass "
                              "--model PATH.")
        # The message is stored before the model loads (as the window does): a kill or a
        # failed load in the first seconds must not lose what the user typed. A new chat and
        # its message are one transaction, so a failure leaves no empty chat behind.
        with service.all_or_nothing():
            if args.conversation is not None:
                conversation = chats.conversation(args.conversation)
            elif args.cont and chats.latest_conversation() is not None:
                conversation = chats.latest_conversation()
            else:
                conversation = service.new_conversation(system_prompt=args.system)
            overrides = {key: getattr(args, key) for key in
                         ("temperature", "top_p", "top_k", "min_p", "repeat_penalty",
                          "max_tokens", "seed") if getattr(args, key) is not None}
            if args.think is not None:
                overrides["thinking"] = args.think
            if args.effort:
                overrides["reasoning_effort"] = args.effort
            if overrides:
                conversation = chats.update_conversation(
                    conversation.id, settings={**conversation.settings, **overrides})
            for name in args.collection:
                ctx.documents.attach(conversation.id, ctx.documents.collection_id(name))
            user = service.add_user_message(conversation.id, args.message, args.image)
        if args.model or args.ctx or remote_ref:
            service.load_model(model_path or conversation.model_path
                               or ctx.settings.get("last_model") or "", n_ctx=args.ctx)
            assert service.model is not None  # load_model raises rather than leave none
            conversation = chats.update_conversation(conversation.id,
                                                     model_path=service.model.path)
        if args.image:  # the images are stored with the message; the model must see them
            model = service.load_model(model_path or conversation.model_path
                                       or ctx.settings.get("last_model") or "", n_ctx=args.ctx)
            if not model.loaded.get("vision"):
                raise HearthError(f"{Path(model.path).name} cannot see images: pass its projector "
                                  "with --mmproj PATH, or choose a vision model.")

        def stream(piece: str) -> None:
            if not args.json:
                sys.stdout.write(piece)
                sys.stdout.flush()

        def think(piece: str) -> None:
            if args.show_thinking:
                sys.stderr.write(piece)
                sys.stderr.flush()

        # A remote chat says where it goes before anything is sent.
        announce(chats.conversation(conversation.id).model_path
                 or ctx.settings.get("last_model"))
        reply = service.answer(conversation.id, user, on_text=stream, on_reasoning=think)
        if args.show_thinking and reply.reasoning:
            sys.stderr.write("\n")
        if service.model is not None and service.model.warning:
            print(f"hearth: {service.model.warning}", file=sys.stderr)
        if (args.think is False and service.model is not None
                and service.reasoning_format(service.model)
                and not service.thinking_controls(service.model)["thinking_switch"]):
            print("hearth: this model's chat template has no switch for thinking, so it thought "
                  "anyway (kept apart from the answer).", file=sys.stderr)
        if args.json:
            print(json.dumps({
                "conversation_id": conversation.id,
                "message_id": reply.id,
                "reply": reply.content,
                "reasoning": reply.reasoning,
                "reasoning_s": reply.reasoning_s,
                "state": reply.state,
                "prompt_tokens": reply.prompt_tokens,
                "cached_tokens": reply.cached_tokens,
                "completion_tokens": reply.completion_tokens,
                "ttft_s": reply.ttft_s,
                "tokens_per_s": reply.tokens_per_s,
                # speculative decoding: {"drafted", "accepted", "speedup"}; null when off
                "spec": reply.spec or None,
                "stop_reason": reply.stop_reason,
                "model": service.model.path if service.model else None,
                "remote_host": service.model.remote.host
                if service.model and service.model.remote else None,
                "base_model": service.model.is_base_model if service.model else None,
                "sources": reply.sources,
            }, ensure_ascii=False))
        else:
            sys.stdout.write("\n")
            if args.collection:
                sources = reply.sources
                print("\nSources:" if sources else "\nNo passage in the collection matched.")
                for source in sources:
                    print(f"  [{source['n']}] {source['location']}  ({source['path']})")
        return 0


def cmd_history(args: argparse.Namespace, data_dir: Path) -> int:
    with _context(data_dir) as ctx:
        chats = ctx.chats
        if args.history_command == "import":
            from desktop.cli.import_chats import cmd_import

            return cmd_import(args, ctx)
        if args.history_command in ("list", "search"):
            found = (chats.search(args.query) if args.history_command == "search"
                     else chats.conversations())
            rows = [{"id": c.id, "title": c.title, "updated_at": c.updated_at,
                     "messages": len(chats.messages(c.id))} for c in found]
            if args.json:
                print(json.dumps(rows, ensure_ascii=False))
            else:
                for row in rows:
                    print(f"{row['id']:>5}  {row['title'] or '(untitled)'}  [{row['messages']} messages]")
            return 0
        from desktop.core.store.export import conversation_data, export_text, to_markdown

        data = conversation_data(chats, args.id,
                                 with_thinking=getattr(args, "with_thinking", False))
        if args.history_command == "show":
            print(json.dumps(data, ensure_ascii=False) if args.json else to_markdown(data))
            return 0
        text = export_text(data, args.format)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            print(text)
        return 0


def cmd_models(args: argparse.Namespace, data_dir: Path) -> int:
    from desktop.cli.models import run_models_command

    with _context(data_dir) as ctx:
        return run_models_command(args, ctx)


def cmd_docs(args: argparse.Namespace, data_dir: Path) -> int:
    from desktop.cli.docs import run_docs_command

    with _context(data_dir) as ctx:
        return run_docs_command(args, ctx)


def cmd_serve(args: argparse.Namespace, data_dir: Path) -> int:
    from desktop.cli.serve import cmd_serve as serve

    return serve(args, data_dir)


def cmd_bench(args: argparse.Namespace, data_dir: Path) -> int:
    from desktop.bench import run_bench

    return run_bench(args, data_dir)
