"""`hearth serve`: the local API server (OpenAI and Ollama compatible), headless.

Off unless started. Loopback only unless the user names another address (then a warning). A
key is always required: --api-key, else $HEARTH_API_KEY, else a new one printed once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

KEY_ENV = "HEARTH_API_KEY"


def add_serve_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="serve the model over an OpenAI/Ollama-compatible API")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    serve.add_argument("--api-key", help=f"the key clients must send (default: ${KEY_ENV}, "
                       "else a new key is printed)")
    serve.add_argument("--model", help="GGUF chat model (default: the model used last)")
    serve.add_argument("--embed-model",
                       help="GGUF embedding model for /v1/embeddings (default: the documents')")
    serve.add_argument("--ctx", type=int, help="context length in tokens")
    serve.add_argument("--allow-origin", metavar="ORIGIN",
                       help="let web pages from this origin call the API (CORS); none by default")


def cmd_serve(args: argparse.Namespace, data_dir: Path) -> int:
    from desktop.core.chat.service import ChatService
    from desktop.core.context import AppContext
    from desktop.core.errors import HearthError
    from desktop.core.settings import SAMPLING_DEFAULTS
    from desktop.server.app import ApiServer, bind
    from desktop.server.auth import generate_key, is_loopback
    from desktop.server.common import Backend
    from desktop.server.queue import EngineQueue

    if not 0 <= args.port <= 65535:
        raise HearthError(f"--port {args.port} is not a port number (0 to 65535).")
    if args.ctx is not None and args.ctx < 256:
        raise HearthError(f"--ctx {args.ctx} is too small: use at least 256 tokens.")
    key = args.api_key or os.environ.get(KEY_ENV) or ""
    generated = not key
    if generated:
        key = generate_key()
    # The address first: a port in use is said at once, not after loading a model.
    sock = bind(args.host, args.port)
    ctx = AppContext(data_dir)
    try:
        service = ChatService(ctx)
        path = args.model or ctx.settings.get("last_model")
        if not path:
            ctx.ensure_starter()
            latest = ctx.library.latest_chat_model()
            path = latest.path if latest is not None else None
        if not path:
            raise HearthError("No chat model is chosen: pass --model PATH (a GGUF file).")
        if str(path).startswith("remote:"):
            # Serving it would send local clients' prompts to another machine unannounced.
            raise HearthError("The model used last is on a remote server; serve shares a "
                              "local model: pass --model PATH (a GGUF file).")
        print(f"hearth: loading {Path(path).name}…", file=sys.stderr, flush=True)
        model = service.load_model(path, n_ctx=args.ctx)
        if model.warning:
            print(f"hearth: {model.warning}", file=sys.stderr)
        # The same defaults a new chat with this model gets in the window.
        entry = ctx.library.find(model.path)
        own = entry.settings if entry else {}
        sampling = {**SAMPLING_DEFAULTS, **ctx.settings.get("sampling", {}),
                    **{k: v for k, v in own.items() if k in SAMPLING_DEFAULTS}}
        embed_model = args.embed_model or ctx.embed_model
        if embed_model:
            embed_model = os.path.abspath(Path(embed_model).expanduser())
            if not Path(embed_model).is_file():
                raise HearthError(f"The embedding model {embed_model} does not exist.")
        backend = Backend(EngineQueue(ctx.engine), model, sampling, embed_model)
        server = ApiServer(backend, host=args.host, port=args.port, key=key,
                           allow_origin=args.allow_origin, sock=sock)
        if not is_loopback(args.host):
            print(f"hearth: warning: listening on {args.host}, so other machines on the "
                  "network can reach this server (they still need the key).", file=sys.stderr)
        if generated:
            print(f"hearth: API key (shown once; set {KEY_ENV} or --api-key to choose one): "
                  f"{key}", flush=True)
        print(f"hearth: serving {backend.model_id} at {server.url}/v1 (OpenAI) and "
              f"{server.url}/api (Ollama); Ctrl+C stops", file=sys.stderr, flush=True)
        server.serve()
        return 0
    finally:
        sock.close()
        ctx.close()
