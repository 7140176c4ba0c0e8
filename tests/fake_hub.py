"""A local HTTP server that plays the Hugging Face Hub for tests (set HF_ENDPOINT to its url).

It answers what huggingface_hub's HfApi asks (model search, model info with file metadata)
and serves files at /{repo}/resolve/{revision}/{file} with Range support. Faults can be
switched on per test: cut the connection mid-file, corrupt a byte, fail with 500s, demand
a token (gated repo), throttle (so a process can be killed mid-download).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class HubFile:
    path: Path
    sha256: str
    size: int


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)  # repo -> the token that opens it
    cut_after: dict[str, int] = field(default_factory=dict)  # file -> bytes before a cut (once)
    corrupt: set[str] = field(default_factory=set)
    fail_500: int = 0  # the next N file requests fail with 500
    throttle_bps: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    # Like the real Hub, answer file requests with a redirect to a signed "CDN" URL on another
    # host name; that host refuses a request that also carries an Authorization header (as S3
    # does: "Only one auth mechanism allowed").
    redirect_host: str | None = None
    auth_log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)

    def add_file(self, repo: str, name: str, path: Path, sha256: str | None = None) -> None:
        digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
        self.repos.setdefault(repo, {})[name] = HubFile(path, digest, path.stat().st_size)

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(head=False)

            def _json(self, data: object, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                url = urlparse(self.path)
                hub.requests.append((self.command, url.path, self.headers.get("Range")))
                if url.path == "/api/models":
                    query = parse_qs(url.query)
                    term = (query.get("search") or [""])[0].lower()
                    found = [hub._summary(r) for r in hub.repos if term in r.lower()]
                    return self._json(found[: int((query.get("limit") or [100])[0])])
                match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", url.path)
                if match:
                    repo = unquote(match.group(1))
                    if repo not in hub.repos:
                        return self._json({"error": "Repository not found"}, 404)
                    return self._json(hub._info(repo))
                auth = self.headers.get("Authorization")
                hub.auth_log.append((url.path, auth))
                signed = url.path.startswith("/cdn/")
                path = url.path[len("/cdn"):] if signed else url.path
                match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", path)
                if not match:
                    return self._json({"error": "not found"}, 404)
                repo, name = unquote(match.group(1)), unquote(match.group(2))
                if signed and auth:
                    return self._json({"error": "Only one auth mechanism allowed"}, 400)
                if not signed and repo in hub.gated and auth != f"Bearer {hub.gated[repo]}":
                    return self._json({"error": "Access to this model is restricted"}, 401)
                if hub.redirect_host and not signed and name in hub.repos.get(repo, {}):
                    port = self.server.server_address[1]
                    self.send_response(302)
                    self.send_header("Location", f"http://{hub.redirect_host}:{port}/cdn{path}"
                                                 "?X-Amz-Signature=signed")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                file = hub.repos.get(repo, {}).get(name)
                if file is None:
                    return self._json({"error": "Entry not found"}, 404)
                if hub.fail_500 > 0:
                    hub.fail_500 -= 1
                    return self._json({"error": "internal error"}, 500)
                start = 0
                ranged = self.headers.get("Range")
                if ranged:
                    start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
                    if start >= file.size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{file.size}")
                        self.end_headers()
                        return None
                self.send_response(206 if ranged else 200)
                self.send_header("Content-Length", str(file.size - start))
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{file.size - 1}/{file.size}")
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head:
                    return None
                cut = hub.cut_after.pop(name, None)
                with file.path.open("rb") as handle:
                    handle.seek(start)
                    position = start
                    while chunk := handle.read(256 * 1024):
                        if name in hub.corrupt and position <= file.size // 2 < position + len(chunk):
                            index = file.size // 2 - position
                            chunk = chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1:]
                        if cut is not None and position + len(chunk) > cut:
                            self.wfile.write(chunk[: max(0, cut - position)])
                            self.wfile.flush()
                            self.close_connection = True
                            return None  # the connection drops mid-file
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return None
                        position += len(chunk)
                        if hub.throttle_bps:
                            time.sleep(len(chunk) / hub.throttle_bps)
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _summary(self, repo: str) -> dict:
        meta = self.meta.get(repo, {})
        return {"id": repo, "modelId": repo, "author": repo.split("/")[0],
                "downloads": meta.get("downloads", 100), "likes": meta.get("likes", 5),
                "lastModified": "2026-10-01T12:00:00.000Z", "gated": repo in self.gated and "auto",
                "tags": ["gguf", f"license:{meta.get('license', 'apache-2.0')}"],
                "cardData": {"license": meta.get("license", "apache-2.0")}}

    def _info(self, repo: str) -> dict:
        siblings = [{"rfilename": "README.md", "size": 10, "blobId": "0" * 40}]
        for name, file in self.repos[repo].items():
            siblings.append({"rfilename": name, "size": file.size, "blobId": "1" * 40,
                             "lfs": {"size": file.size, "sha256": file.sha256,
                                     "pointerSize": 134}})
        return {**self._summary(repo), "sha": "a" * 40, "siblings": siblings, "private": False}
