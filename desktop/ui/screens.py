"""`python main.py screenshots --out DIR`: render the main screens to PNG files, offscreen, at
800x600 and 1600x1000, in light and dark: the main window (first run, and a chat with a long
Markdown reply and sources), the conversation close up (screens_chat, when present), the
Models tabs, Documents, Settings and About (screens_models).

Everything runs in a temporary data dir filled with sample chats; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import inspect
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = ((800, 600), (1600, 1000))
MODES = ("light", "dark")


def add_parser(sub: Any) -> None:
    """Register `screenshots` on the CLI's subparsers."""
    parser = sub.add_parser("screenshots", help="render the main screens to PNG files")
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNG files")
    parser.add_argument("--only", choices=("main", "chat", "models"), action="append",
                        help="render only these groups (repeatable; default: all)")


def cmd_screenshots(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    written = render_all(args.out, set(args.only or ("main", "chat", "models")))
    for path in written:
        print(path)
    print(f"{len(written)} screenshots in {args.out}")
    return 0


def _settle(widget: Any, width: int, height: int) -> None:
    from PySide6.QtCore import QCoreApplication

    widget.resize(width, height)
    widget.show()
    for _ in range(4):  # layouts, then texts fitted to the laid-out widths
        QCoreApplication.processEvents()




def render_main_window(out_dir: Path, data_dir: Path) -> list[Path]:
    """main-start-* (first run: no model) and main-chat-* (sample chats) PNGs."""
    from desktop.app import build_window
    from desktop.core.chat.sample_chats import seed_sample_chats
    from desktop.core.context import AppContext
    from desktop.core.settings import Settings
    from desktop.ui.screens_models import wait_until
    written: list[Path] = []
    first = data_dir / "first-run"
    first.mkdir(parents=True, exist_ok=True)
    settings = Settings(first / "settings.json")
    settings.values["starter_registered"] = True  # no model at all: the first-run panel
    settings.save()
    chat_dir = data_dir / "chats"
    chat_dir.mkdir(parents=True, exist_ok=True)
    ctx = AppContext(chat_dir)
    ctx.ensure_starter()  # the starter model, when its package is installed
    long_chat = seed_sample_chats(ctx)
    documents = ctx.documents
    collection = documents.create_collection("Personal notes and the 2019-2024 archive")
    documents.attach(long_chat, collection)
    ctx.settings.values["last_conversation"] = long_chat
    ctx.settings.save()
    ctx.close()
    for mode in MODES:
        for width, height in SIZES:
            for name, folder in (("start", first), ("chat", chat_dir)):
                chosen = Settings(folder / "settings.json")
                chosen.values["theme"] = mode  # build_window applies it before any widget
                chosen.save()
                window = build_window(folder)
                _settle(window, width, height)
                wait_until(lambda w=window: w.start_panel.view is not None)  # type: ignore[misc]
                _settle(window, width, height)
                path = out_dir / f"main-{name}-{width}x{height}-{mode}.png"
                window.grab().save(str(path))
                written.append(path)
                window.close()
                window.ctx.close()
                window.deleteLater()
    return written


def _call_with(fn: Callable[..., list[Path]], out_dir: Path, ctx: Any,
               data_dir: Path) -> list[Path]:
    """Call a screens module's render function with the arguments it names."""
    offered = {"out_dir": out_dir, "app_context": ctx, "ctx": ctx, "data_dir": data_dir}
    params = inspect.signature(fn).parameters
    kwargs = {name: offered[name] for name in params if name in offered and name != "out_dir"}
    return list(fn(out_dir, **kwargs) or [])


def render_all(out_dir: Path | str, groups: set[str] | None = None) -> list[Path]:
    from desktop.app import create_app
    from desktop.core.context import AppContext
    from desktop.ui import theme

    groups = groups or {"main", "chat", "models"}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    create_app()
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hearth-screens-") as tmp:
        data_dir = Path(tmp)
        try:
            if "main" in groups:
                written += render_main_window(out, data_dir / "main")
            if "chat" in groups:
                render_chat: Callable[..., list[Path]] | None = None
                try:
                    from desktop.ui.screens_chat import render_chat_screens as render_chat
                except ImportError:
                    pass
                if render_chat is not None:
                    (data_dir / "chat").mkdir()
                    ctx = AppContext(data_dir / "chat")
                    try:
                        written += _call_with(render_chat, out, ctx, data_dir / "chat")
                    finally:
                        ctx.close()
            if "models" in groups:
                from desktop.ui.screens_models import render_models_screens

                (data_dir / "models").mkdir()
                ctx = AppContext(data_dir / "models")
                try:
                    ctx.ensure_starter()
                    written += _call_with(render_models_screens, out, ctx, data_dir / "models")
                finally:
                    ctx.close()
        finally:
            theme.apply_theme("system")
    return written
