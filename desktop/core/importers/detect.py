"""Which app a file or folder comes from, by its names first and its contents second."""

from __future__ import annotations

import zipfile
from pathlib import Path

from desktop.core.importers import chatgpt, gpt4all, jan, lmstudio, openwebui
from desktop.core.importers.model import APP_NAMES, Found, ImportFormatError, read_json, shown

SCANNERS = {"gpt4all": gpt4all.scan, "chatgpt": chatgpt.scan, "lmstudio": lmstudio.scan,
            "jan": jan.scan, "openwebui": openwebui.scan}

UNKNOWN = ("Hearth found no chats it knows how to import in {where}: choose GPT4All's or Jan's "
           "data folder, a ChatGPT export (conversations.json or its .zip), LM Studio's "
           "conversations folder or an Open WebUI export (.json).")


def detect(path: Path) -> str:
    """The app `path` belongs to, or ImportFormatError in one sentence."""
    if not path.exists():
        raise ImportFormatError(f"There is no file or folder {shown(path)}.")
    if path.is_dir():
        if gpt4all.chat_files(path) or gpt4all.localdocs_database(path):
            return "gpt4all"
        if (path / "conversations.json").is_file():
            return "chatgpt"
        if jan.thread_folders(path):
            return "jan"
        if _has_lmstudio_files(path):
            return "lmstudio"
        raise ImportFormatError(UNKNOWN.format(where=shown(path)))
    name = path.name
    if name.endswith(".chat") or (name.startswith("localdocs_v") and name.endswith(".db")):
        return "gpt4all"
    if name in ("thread.json", "messages.jsonl"):
        return "jan"
    if name.endswith(lmstudio.SUFFIX):
        return "lmstudio"
    if zipfile.is_zipfile(path):
        return "chatgpt"
    try:
        data = read_json(path)
    except ImportFormatError as exc:
        raise ImportFormatError(f"{shown(path)} could not be read: {exc.message}") from exc
    if chatgpt.looks_like(data):
        return "chatgpt"
    if openwebui.looks_like(data):
        return "openwebui"
    if lmstudio.looks_like(data):
        return "lmstudio"
    raise ImportFormatError(UNKNOWN.format(where=shown(path)))


def _has_lmstudio_files(path: Path) -> bool:
    folder = path / "conversations" if (path / "conversations").is_dir() else path
    return next(folder.rglob(f"*{lmstudio.SUFFIX}"), None) is not None


def scan(path: Path | str, app: str | None = None) -> Found:
    """Everything `path` holds for `app` (detected when None). A path that is not the app's at
    all raises ImportFormatError; a damaged item inside it is a Problem and the rest is read."""
    path = Path(path).expanduser()
    if app is not None and app not in SCANNERS:
        raise ImportFormatError(f"Hearth cannot import from “{app}”: choose one of "
                                f"{', '.join(SCANNERS)}.")
    if not path.exists():
        raise ImportFormatError(f"There is no file or folder {shown(path)}.")
    chosen = app or detect(path)
    found = SCANNERS[chosen](path)
    if not found.conversations and not found.collections and not found.problems:
        raise ImportFormatError(f"No {APP_NAMES[chosen]} chats were found in {shown(path)}.")
    return found
