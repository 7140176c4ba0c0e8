"""Our own downloader (DESIGN 5): resumable .part files, Range requests, retries with backoff,
a free-disk check first, and a SHA-256 check against the Hub's LFS oid before the file is moved
into the library. `hf_hub_download` checks only the size and no longer resumes across restarts.

Jobs are plain functions taking a DownloadState (progress, pause, cancel), testable without Qt.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop import __version__
from desktop.core.errors import HearthError

CHUNK = 1024 * 1024
DISK_MARGIN = 64 * 1024 * 1024


class DownloadError(HearthError):
    """A download that failed; the message says what happened and what is kept."""


class AccessDenied(DownloadError):
    """401/403: the repository is gated or private and needs (another) token."""


class DownloadStopped(HearthError):
    """Paused (the .part is kept for resuming) or cancelled (the .part is removed)."""


@dataclass
class DownloadState:
    """Shared between the download thread and whoever shows it (CLI bar, Qt model)."""

    label: str = ""
    total: int = 0
    done: int = 0
    speed: float = 0.0  # bytes/s, smoothed
    status: str = "queued"  # queued | downloading | verifying | done | paused | cancelled | failed
    error: str = ""
    needs_token: bool = False  # failed on a gated repository: a token may fix it
    _pause: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def eta_s(self) -> float | None:
        if self.speed <= 0 or not self.total:
            return None
        return max(0.0, (self.total - self.done) / self.speed)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def pause(self) -> None:
        self._pause.set()

    def cancel(self) -> None:
        self._cancel.set()

    def reset_controls(self) -> None:
        self._pause.clear()
        self._cancel.clear()

    def check(self) -> None:
        if self._cancel.is_set():
            raise DownloadStopped("Download cancelled.")
        if self._pause.is_set():
            raise DownloadStopped("Download paused; it resumes where it stopped.")


class _TokenStaysHome(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send the Hugging Face token only to the host it was meant for.

    The Hub answers a download with a redirect to a signed CDN URL on another host; urllib
    would forward the Authorization header there, leaking the token (and S3-style storage
    refuses a signed URL that also carries a token). Range and the other headers still go."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != \
                urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_opener = urllib.request.build_opener(_TokenStaysHome)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _hash_existing(path: Path, hasher: hashlib._Hash, state: DownloadState) -> int:
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            state.check()
    return done


def _http_error(exc: urllib.error.HTTPError, label: str) -> DownloadError | None:
    """Errors that retrying cannot fix; None means retry."""
    if exc.code in (401, 403):
        return AccessDenied(
            f"{label}: access denied ({exc.code}). This repository is gated or private: accept "
            "its terms on huggingface.co and enter your Hugging Face token in Hearth.")
    if exc.code == 404:
        return DownloadError(f"{label} no longer exists on the server (404). Refresh the file "
                             "list; the author may have renamed or removed it.")
    if 400 <= exc.code < 500 and exc.code not in (408, 416, 429):
        return DownloadError(f"{label}: the server refused the request ({exc.code}).")
    return None


def download_file(url: str, dest: Path, *, size: int | None, sha256: str | None,
                  state: DownloadState, token: str | None = None, retries: int = 5,
                  backoff_s: float = 1.0, timeout_s: float = 30.0) -> Path:
    """Download `url` to `dest` via `dest.part`, resuming what an earlier run left there."""
    dest = Path(dest)
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    label = dest.name
    state.label = state.label or label
    state.status = "downloading"
    hasher = hashlib.sha256()
    have = _hash_existing(part, hasher, state) if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        hasher, have = hashlib.sha256(), 0
    state.total, state.done = size or 0, have
    if size is not None:
        free = shutil.disk_usage(dest.parent).free
        if size - have + DISK_MARGIN > free:
            raise DownloadError(
                f"Not enough disk space for {label}: it needs {(size - have) / 1e9:.2f} GB more "
                f"and {dest.parent} has {free / 1e9:.2f} GB free.")

    failures = 0
    progress_mark = have  # a failure after new bytes arrived starts the retry count afresh
    while True:
        state.check()
        have = state.done  # bytes written and hashed so far (survives an exception mid-stream)
        headers = {"User-Agent": f"Hearth/{__version__}", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with _opener.open(urllib.request.Request(url, headers=headers),
                              timeout=timeout_s) as response:
                if have and response.status == 200:
                    # The server ignored Range: start over rather than append a second copy.
                    part.unlink(missing_ok=True)
                    hasher, have, state.done = hashlib.sha256(), 0, 0
                served = _served_size(response)
                if size is not None and served is not None and served != size:
                    part.unlink(missing_ok=True)
                    raise _changed(label, served, size)
                if size is None:
                    length = response.headers.get("Content-Length")
                    state.total = have + int(length) if length else 0
                have = _stream(response, part, hasher, have, state)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and size is not None and have >= size:
                pass  # everything is already here
            elif exc.code == 416 and size is not None:
                # Our part is longer than the server's file: it is not the file we listed.
                part.unlink(missing_ok=True)
                raise _changed(label, _served_size(exc), size) from exc
            else:
                fatal = _http_error(exc, label)
                if fatal is not None:
                    raise fatal from exc
                failures += 1
                if failures > retries:
                    raise DownloadError(f"{label}: the server keeps failing ({exc.code}). The "
                                        "partial download is kept; try again later.") from exc
                _sleep(backoff_s, failures, state)
                continue
        except (urllib.error.URLError, ConnectionError, TimeoutError,
                http.client.IncompleteRead, http.client.RemoteDisconnected) as exc:
            have = state.done
            failures = 1 if have > progress_mark else failures + 1
            progress_mark = have
            if failures > retries:
                kept = (f"{have / 1e6:.0f} MB are kept and the download resumes from there."
                        if have else "Nothing was downloaded yet.")
                what = _reason(exc)
                raise DownloadError(
                    f"No network: {label} could not be downloaded ({what}). {kept}"
                    if what.startswith("no network") else
                    f"{label}: the connection keeps dropping ({what}). {kept}",
                    details=repr(exc)) from exc
            _sleep(backoff_s, failures, state)
            continue
        if size is not None and have < size:
            # The stream ended early: resume with a Range request.
            failures = 1 if have > progress_mark else failures + 1
            progress_mark = have
            if failures > retries:
                raise DownloadError(f"{label}: the server keeps ending the download early. "
                                    f"{have / 1e6:.0f} MB are kept for a later resume.")
            _sleep(backoff_s, failures, state)
            continue
        break

    state.status = "verifying"
    if size is not None and have != size:
        raise DownloadError(f"{label}: got {have} bytes, expected {size}. The download was kept "
                            "as .part; try again.")
    if sha256 and hasher.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{label} failed verification: its SHA-256 does not match the "
                            "published one. The corrupt download was discarded; try again.")
    os.replace(part, dest)
    state.status, state.done = "done", have
    return dest


def _served_size(response: Any) -> int | None:
    """The whole file's size as the server states it: a Content-Range total, or the length of
    a full (200) response. None when the server does not say."""
    headers = response.headers
    ranged = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", headers.get("Content-Range") or "")
    if ranged:
        return int(ranged.group(1))
    length = headers.get("Content-Length")
    if length and getattr(response, "status", getattr(response, "code", None)) == 200:
        return int(length)
    return None


def _changed(label: str, served: int | None, size: int) -> DownloadError:
    what = f"is {served:,} bytes" if served is not None else "has a different size"
    return DownloadError(f"{label} on the server {what}, not the {size:,} bytes expected: the "
                         "file changed since it was listed. Nothing was kept; look it up again.")


def _stream(response: http.client.HTTPResponse, part: Path, hasher: hashlib._Hash, have: int,
            state: DownloadState) -> int:
    window_start, window_bytes = time.monotonic(), 0
    try:
        with part.open("ab") as handle:
            while True:
                state.check()
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                handle.write(chunk)
                hasher.update(chunk)
                have += len(chunk)
                state.done = have
                window_bytes += len(chunk)
                elapsed = time.monotonic() - window_start
                if elapsed >= 0.5:
                    current = window_bytes / elapsed
                    state.speed = current if state.speed == 0 else 0.7 * state.speed + 0.3 * current
                    window_start, window_bytes = time.monotonic(), 0
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(
                f"The disk is full while downloading {part.name[:-5]}. {have / 1e6:.0f} MB are "
                "kept; free some space and resume.") from exc
        raise
    return have


def _sleep(backoff_s: float, failures: int, state: DownloadState) -> None:
    deadline = time.monotonic() + min(backoff_s * 2 ** (failures - 1), 30.0)
    while time.monotonic() < deadline:
        state.check()
        time.sleep(min(0.05, backoff_s))


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: errno text ("[Errno -2] Name or service not known") means
    nothing to a user, and the details stay available for "copy details"."""
    reason = getattr(exc, "reason", None)
    cause = reason if isinstance(reason, BaseException) else exc
    if isinstance(cause, socket.gaierror):
        return "no network: the server's name cannot be looked up"
    if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH,
                                                      errno.ENETDOWN):
        return "no network: the server cannot be reached"
    if isinstance(cause, ConnectionRefusedError):
        return "the server refused the connection"
    if isinstance(cause, ConnectionResetError):
        return "the connection was reset"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return "the server stopped answering"
    if isinstance(cause, (http.client.IncompleteRead, http.client.RemoteDisconnected)):
        return "the server closed the connection mid-file"
    return "a network error"
