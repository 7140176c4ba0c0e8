"""The API server: starlette routes behind the Host/key/CORS checks, served by uvicorn.

`ApiServer` is what the CLI's `serve` runs in the foreground and what a window switch would
run in a thread (`start_in_thread` / `stop`); both share the app's one engine through the
Backend's EngineQueue.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from desktop.core.errors import EngineCrashed, HearthError
from desktop.server import ollama_api, openai_api
from desktop.server.auth import allowed_hosts, protect
from desktop.server.common import ApiError, Backend, ClientGone
from desktop.server.queue import Cancelled


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
                        status_code=status)


async def _hearth_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return _error(request, exc.status, exc.message)
    if isinstance(exc, EngineCrashed | Cancelled):
        return _error(request, 503, exc.message)  # type: ignore[attr-defined]
    assert isinstance(exc, HearthError)
    # The engine's own sentences (too long for the context, a schema it cannot follow).
    return _error(request, 400, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody reads it: the client disconnected


def create_app(backend: Backend, *, key: str, hosts: set[str],
               allow_origin: str | None = None) -> Any:
    routes = [
        Route("/v1/models", openai_api.models, methods=["GET"]),
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/completions", openai_api.completions, methods=["POST"]),
        Route("/v1/embeddings", openai_api.embeddings, methods=["POST"]),
        Route("/api/tags", ollama_api.tags, methods=["GET"]),
        Route("/api/version", ollama_api.version, methods=["GET"]),
        Route("/api/chat", ollama_api.chat, methods=["POST"]),
        Route("/api/generate", ollama_api.generate, methods=["POST"]),
        Route("/api/embed", ollama_api.embed, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        HearthError: _hearth_error, HTTPException: _http_error, ClientGone: _client_gone})
    app.state.backend = backend
    return protect(app, key=key, hosts=hosts, allow_origin=allow_origin)


def bind(host: str, port: int) -> socket.socket:
    """Listen before uvicorn starts: port 0 picks a free port, and the address printed as
    "ready" already accepts connections."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise HearthError(f"Hearth cannot listen on {host}:{port}: {exc.strerror or exc}. "
                          "Choose another --port (or stop the program using it).") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ApiServer:
    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = 8080,
                 key: str, allow_origin: str | None = None,
                 sock: socket.socket | None = None) -> None:
        import uvicorn

        self.backend = backend
        self.socket = sock or bind(host, port)  # `sock`: bound by the caller, on (host, port)
        self.host = host
        self.port = int(self.socket.getsockname()[1])
        app = create_app(backend, key=key, hosts=allowed_hosts(host, self.port),
                         allow_origin=allow_origin)
        config = uvicorn.Config(app, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def serve(self) -> None:
        """Serve until Ctrl+C (or stop()); the engine queue runs meanwhile."""
        self.backend.queue.start()
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.backend.queue.stop()
            self.socket.close()

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve, daemon=True, name="api-server")
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
