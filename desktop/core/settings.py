"""App settings: a small versioned JSON file in the data dir, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from desktop.core.errors import HearthError

SETTINGS_VERSION = 1

SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.1,
    "max_tokens": 1024,
    "seed": None,
    # Speculative decoding (prompt-lookup drafts, engine_worker/decode_loop.py): exact, so on
    # by default; a model's own settings can turn it off.
    "speculative": True,
    # A small model of the same vocabulary drafting for this one: "auto" pairs one from the
    # library where there is one, "off" never does (set per model in Models → Installed).
    "draft_model": "auto",
}

DEFAULTS: dict[str, Any] = {
    "version": SETTINGS_VERSION,
    "system_prompt": "",
    "sampling": SAMPLING_DEFAULTS,
    "n_ctx": 4096,
    "n_gpu_layers": None,  # None: automatic plan from free VRAM; a number overrides it
    "n_threads": None,
    "last_model": None,
    "last_conversation": None,
    "window_geometry": None,
    "starter_registered": False,
    "kv_states_on_disk": True,  # switching back to a long chat skips re-reading it
    "kv_states_ram_mb": 1024,
    "kv_states_disk_mb": 2048,  # saved chat states kept on disk (least recently used go first)
    # The window's API server (desktop/core/api_service.py): off unless the user turns it on,
    # on this machine only unless they choose another address; port 0 picks a free one.
    "api_server_enabled": False,
    "api_server_host": "127.0.0.1",
    "api_server_port": 8080,
    "api_server_allow_origin": "",  # a web origin allowed to call it (CORS); none by default
}


_NUMBER = (int, float)
_OPTIONAL_INT = (int, type(None))
_OPTIONAL_STR = (str, type(None))
# What each stored value may be. A hand-edited or damaged file with a wrong type must not
# crash the app: such a value is dropped and its default used.
TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,), "system_prompt": (str,), "sampling": (dict,), "n_ctx": (int,),
    "n_gpu_layers": _OPTIONAL_INT, "n_threads": _OPTIONAL_INT, "last_model": _OPTIONAL_STR,
    "last_conversation": _OPTIONAL_INT, "window_geometry": _OPTIONAL_STR,
    "starter_registered": (bool,), "kv_states_on_disk": (bool,), "kv_states_ram_mb": (int,),
    "models_dir": _OPTIONAL_STR, "embed_model": _OPTIONAL_STR,
    "doc_max_file_mb": _NUMBER, "doc_max_chunks": (int,), "doc_chunk_tokens": (int,),
    "doc_chunk_overlap": (int,),
    "api_server_enabled": (bool,), "api_server_host": (str,), "api_server_port": (int,),
    "api_server_allow_origin": (str,),
}
SAMPLING_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER, "top_p": _NUMBER, "top_k": (int,), "min_p": _NUMBER,
    "repeat_penalty": _NUMBER, "max_tokens": (int,), "seed": _OPTIONAL_INT,
    # Speculative decoding's draft model (core/models/draft_pairing.py): "auto", "off" or a
    # GGUF path; a model's own setting of the same name comes first.
    "speculative": (bool,), "draft_model": (str,),
}


def _fits(value: Any, kinds: tuple[type, ...] | None) -> bool:
    if kinds is None:
        return True  # a key this version does not know: kept for the version that wrote it
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not a number here
    return isinstance(value, kinds)


MAX_BYTES = 1024 * 1024  # a settings file is a few hundred bytes; more is not ours


class Settings:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.values: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
        # What went wrong reading the file, as one sentence to show once (None: nothing).
        self.problem: str | None = None
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
            if len(raw) > MAX_BYTES:
                raise ValueError("it is larger than a settings file can be")
            # A hostile or damaged file (100,000 nested brackets) overflows the parser's
            # recursion: that is damage too, not a crash.
            stored = json.loads(raw.decode("utf-8"))
            if not isinstance(stored, dict):
                raise ValueError("it does not hold a settings object")
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError, MemoryError) as exc:
            self._set_aside(exc)
            return
        stored = {k: v for k, v in stored.items() if _fits(v, TYPES.get(k))}
        sampling = {k: v for k, v in stored.get("sampling", {}).items()
                    if _fits(v, SAMPLING_TYPES.get(k))}
        self.values.update(stored)
        self.values["sampling"] = {**SAMPLING_DEFAULTS, **sampling}

    def _set_aside(self, exc: BaseException) -> None:
        """A damaged settings file must not stop the app: keep a copy, start from defaults,
        and say so (once: the next start finds no damaged file)."""
        bad = self.path.with_suffix(".json.bad")
        why = "it is too deeply nested" if isinstance(exc, RecursionError) else (
            getattr(exc, "strerror", None) or str(exc).split("\n")[0] or type(exc).__name__)
        try:
            self.path.replace(bad)
            kept = f"; the old file was kept as {bad.name}"
        except OSError:
            kept = ""
        self.problem = (f"The settings file {self.path} could not be read ({why}), so Hearth "
                        f"started with default settings{kept}.")

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.save()

    def save(self) -> None:
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".settings-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.values, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            # A full disk or a read-only folder: the old file stays whole (the write went to
            # a temporary file), and the half-written one is removed.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise HearthError(f"Hearth could not save its settings to {self.path}: "
                              f"{exc.strerror or exc}. Free some disk space or make the folder "
                              "writable; the previous settings are unchanged.") from exc
