"""Who may talk to the API server: the right Host header, the right key, CORS only if allowed.

- Host: a web page the user visits can make its own domain resolve to 127.0.0.1 (DNS
  rebinding) and then talk to a loopback server as "same origin". Its requests still carry the
  attacker's domain in the Host header, so only the server's own names are accepted (Jan had
  an advisory for exactly this).
- Key: every request needs `Authorization: Bearer KEY` (OpenAI and Ollama clients both send
  it), compared in constant time.
- CORS: no Access-Control-* header at all unless the user named an origin (--allow-origin);
  then starlette's CORSMiddleware answers for that origin only.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
from typing import Any

Scope = dict[str, Any]
ASGIApp = Any

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def generate_key() -> str:
    return "hearth-" + secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _local_addresses() -> set[str]:
    """Every address and name this machine answers to (for a bind on all interfaces)."""
    names = {socket.gethostname(), f"{socket.gethostname()}.local", socket.getfqdn()}
    try:
        import psutil

        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(_bracket(address.address.split("%")[0]))
    except (ImportError, OSError):
        pass
    return {n.lower() for n in names if n}


def allowed_hosts(bind_host: str, port: int) -> set[str]:
    """The Host header values (host:port) a request to this server may carry."""
    if is_loopback(bind_host):
        names = set(LOOPBACK_NAMES)
    elif bind_host in ("0.0.0.0", "::", ""):
        names = set(LOOPBACK_NAMES) | _local_addresses()
    else:
        names = {_bracket(bind_host.lower()), socket.gethostname().lower(),
                 f"{socket.gethostname().lower()}.local"}
    allowed = {f"{name}:{port}" for name in names}
    if port == 80:  # clients leave out the default port
        allowed |= names
    return allowed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(send: Any, status: int, message: str, ollama: bool) -> None:
    # Each API's own error shape, so its clients show the sentence instead of a parse error.
    body = {"error": message} if ollama else {
        "error": {"message": message, "type": "invalid_request_error" if status != 401
                  else "authentication_error", "code": status}}
    data = json.dumps(body).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="hearth"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class HostCheck:
    """Refuses (403) any request whose Host header is not one of this server's addresses."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = (_header(scope, b"host") or "").lower().rstrip(".")
            if host not in self.hosts:
                await _refuse(send, 403, f"This server does not answer for the host {host!r}.",
                              scope["path"].startswith("/api/"))
                return
        await self.app(scope, receive, send)


class KeyCheck:
    """Refuses (401) any request without the right `Authorization: Bearer KEY`. CORS
    preflights (OPTIONS) carry no credentials by design; the CORS layer above answers them."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = _header(scope, b"authorization") or ""
            scheme, _, token = given.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode("utf-8"), self.key)
            if not ok:
                message = ("A wrong API key was given." if given else
                           "An API key is required: send it as 'Authorization: Bearer KEY'.")
                await _refuse(send, 401, message, scope["path"].startswith("/api/"))
                return
        await self.app(scope, receive, send)


def protect(app: ASGIApp, *, key: str, hosts: set[str], allow_origin: str | None) -> ASGIApp:
    """Wrap the routes: Host check outermost, then CORS (only if an origin is allowed), then
    the key check."""
    wrapped: ASGIApp = KeyCheck(app, key)
    if allow_origin:
        from starlette.middleware.cors import CORSMiddleware

        wrapped = CORSMiddleware(wrapped, allow_origins=[allow_origin], allow_methods=["*"],
                                 allow_headers=["*"])
    return HostCheck(wrapped, hosts)
