"""The remote engine from the command line: chat with a model on an OpenAI-compatible server.

Two ways, one design:
  hearth chat --remote URL --remote-model NAME [--api-key-env VAR] "message"   (one-off)
  hearth models remote add URL [--model NAME] [--api-key-env VAR]              (saved)
  hearth chat --model remote:NAME "message"   (NAME on the saved server; remote:NAME@URL
                                                 when several are saved)
  hearth models remote list [--models] | rm URL
The key is read from the environment variable named by --api-key-env (never from the command
line, where other users see it in the process list); `models remote add` stores it in the OS
keychain, so later chats need no flag. Every remote chat is marked with the host it goes to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from desktop.core.errors import HearthError


def add_chat_arguments(chat: argparse.ArgumentParser) -> None:
    chat.add_argument("--remote", metavar="URL",
                      help="chat with a model on this OpenAI-compatible server (the prompt "
                      "leaves this machine; see also --model remote:NAME)")
    chat.add_argument("--remote-model", metavar="NAME", help="the model's name on --remote")
    chat.add_argument("--api-key-env", metavar="VAR",
                      help="read the remote server's API key from this environment variable")


def add_models_parser(msub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    remote = msub.add_parser("remote", help="models on a remote OpenAI-compatible server")
    rsub = remote.add_subparsers(dest="remote_command", required=True)
    radd = rsub.add_parser("add", help="save a server (asks it for its models)")
    radd.add_argument("url")
    radd.add_argument("--model", help="the model to chat with (default: the server's first)")
    radd.add_argument("--api-key-env", metavar="VAR",
                      help="store the key in this environment variable in the OS keychain")
    radd.add_argument("--json", action="store_true")
    rlist = rsub.add_parser("list", help="the saved servers")
    rlist.add_argument("--models", action="store_true", help="ask each server for its models")
    rlist.add_argument("--json", action="store_true")
    rrm = rsub.add_parser("rm", help="forget a server and its key")
    rrm.add_argument("url")


def _key_from_env(name: str | None) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise HearthError(f"The environment variable {name} (--api-key-env) is not set or "
                          "is empty.")
    return value


def chat_model_ref(args: argparse.Namespace, ctx: Any) -> str | None:
    """The `remote:MODEL@URL` this chat uses (None: a local model), with the key from
    --api-key-env put to use for this process only."""
    from desktop.core.engine import remote

    if args.remote_model and not args.remote:
        raise HearthError("--remote-model needs --remote URL (or use --model remote:NAME).")
    if args.remote:
        if args.model:
            raise HearthError("Pass either --model or --remote, not both.")
        if not args.remote_model:
            raise HearthError("--remote needs --remote-model NAME (`hearth models remote add "
                              "URL` lists the server's models).")
        ref = remote.remote_ref(args.remote, args.remote_model)
    elif args.model and args.model.startswith(remote.PREFIX):
        ref = remote.resolve_model(ctx.settings, args.model)
    else:
        if args.api_key_env:
            raise HearthError("--api-key-env is for a remote model (--remote or "
                              "--model remote:NAME).")
        return None
    key = _key_from_env(args.api_key_env)
    if key:
        remote.use_api_key(remote.parse_ref(ref)[0], key)
    return ref


def announce(model_ref: str | None) -> None:
    """Say, before anything is sent, that this chat leaves the machine and where to."""
    from desktop.core.engine import remote

    if remote.is_remote_ref(model_ref):
        url, model = remote.parse_ref(str(model_ref))
        print(f"hearth: this chat is sent to the remote server at {remote.host_of(url)} "
              f"(model {model}); it leaves this machine.", file=sys.stderr, flush=True)


def run_remote_command(args: argparse.Namespace, ctx: Any) -> int:
    from desktop.core.engine import remote

    settings = ctx.settings
    if args.remote_command == "add":
        url = remote.normalize_url(args.url)
        key = _key_from_env(args.api_key_env)
        models = remote.list_models(url, key)  # the address and key work before anything is kept
        names = [m["id"] for m in models]
        if args.model and args.model not in names:
            raise HearthError(f"The server at {remote.host_of(url)} has no model "
                              f"{args.model!r}; it has: {', '.join(names) or 'none'}.")
        chosen = args.model or (names[0] if names else None)
        n_ctx = next((m["n_ctx"] for m in models if m["id"] == chosen), None)
        entry = remote.save_server(settings, url, chosen, n_ctx)
        stored = remote.set_api_key(url, key) if key else True
        if args.json:
            print(json.dumps({**entry, "host": remote.host_of(url), "models": names,
                              "key_stored": bool(key) and stored}))
        else:
            print(f"saved {url}: {len(names)} model(s): {', '.join(names)}")
            if chosen:
                print(f"chat with it: hearth chat --model remote:{chosen} \"…\"  "
                      f"(prompts go to {remote.host_of(url)})")
        if not stored:
            print("hearth: no system keychain answered, so the key was not stored: pass "
                  f"--api-key-env {args.api_key_env} when you chat.", file=sys.stderr)
        return 0
    if args.remote_command == "list":
        rows = []
        for server in remote.saved_servers(settings):
            row = {**server, "host": remote.host_of(server["url"])}
            if args.models:
                try:
                    row["models"] = [m["id"] for m in remote.list_models(
                        server["url"], remote.get_api_key(server["url"]))]
                except HearthError as exc:
                    row["error"] = exc.message
            rows.append(row)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            for row in rows:
                extra = (f"  models: {', '.join(row['models'])}" if "models" in row
                         else f"  {row['error']}" if "error" in row else "")
                print(f"{row['url']}  model {row.get('model') or '(none chosen)'}{extra}")
            if not rows:
                print("No remote server is saved. Add one: hearth models remote add URL")
        return 0
    if not remote.remove_server(settings, args.url):
        raise HearthError(f"No remote server {args.url} is saved (see: hearth models remote "
                          "list).")
    print(f"removed {remote.normalize_url(args.url)} and its key")
    return 0
