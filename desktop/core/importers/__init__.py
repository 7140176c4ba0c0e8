"""Imports for people coming from other apps: GPT4All (chats and LocalDocs), ChatGPT's data
export, LM Studio, Jan and Open WebUI. One small reader per app, `detect` to tell them apart,
`apply` to bring what they found into Hearth. No Qt here (DESIGN section 1)."""

from __future__ import annotations

from desktop.core.importers.apply import (
    ImportReport,
    Preview,
    make_preview,
    run_import,
    save_conversation,
)
from desktop.core.importers.detect import detect, scan
from desktop.core.importers.model import APP_NAMES, APPS, ImportFormatError

__all__ = ["APPS", "APP_NAMES", "ImportFormatError", "ImportReport", "Preview", "detect",
           "make_preview", "run_import", "save_conversation", "scan"]
