"""The Hugging Face token: kept in the OS keychain via keyring, never in a file or a log.

keyring can block for a long time where no secret service runs (headless Linux), so every
call runs in a thread with a timeout; when no backend works the caller is told, and the token
is kept in memory for this session only.
"""

from __future__ import annotations

import os
import threading
from typing import Any

SERVICE = "Hearth"
USER = "huggingface-token"
TIMEOUT_S = 3.0


class KeyringUnavailable(Exception):
    pass


_session_token: str | None = None


def _call(fn: Any, *args: Any) -> Any:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args)
        except Exception as exc:  # noqa: BLE001 - any backend failure means "unavailable"
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="keyring")
    thread.start()
    thread.join(TIMEOUT_S)
    if thread.is_alive():
        raise KeyringUnavailable("the system keychain did not answer")
    if "error" in result:
        raise KeyringUnavailable(str(result["error"]))
    return result.get("value")


def _keyring() -> Any:
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise KeyringUnavailable("no keychain backend is available on this system")
    return keyring


def get_token() -> str | None:
    """The token entered in Hearth (this session's, else the keychain's), else the HF_TOKEN
    environment variable that every Hugging Face tool honours."""
    if _session_token:
        return _session_token
    try:
        stored = _call(lambda: _keyring().get_password(SERVICE, USER))
    except KeyringUnavailable:
        stored = None
    return stored or os.environ.get("HF_TOKEN") or None


def set_token(token: str) -> bool:
    """Store the token. Returns False when it could only be kept for this session."""
    global _session_token
    token = token.strip()
    try:
        _call(lambda: _keyring().set_password(SERVICE, USER, token))
        _session_token = None
        return True
    except KeyringUnavailable:
        _session_token = token
        return False


def forget_token() -> None:
    global _session_token
    _session_token = None
    try:
        _call(lambda: _keyring().delete_password(SERVICE, USER))
    except KeyringUnavailable:
        pass
