"""The conversation close up, rendered to PNG offscreen (called by `main.py screenshots`,
desktop/ui/screens.py): a long Markdown reply with a table, code with a long line, a
blockquote and sources, shown as version 2 of 3, then a reply stopped at the token limit;
and a reasoning model's reply with its thinking collapsed and expanded
(chat-thinking-{W}x{H}-{mode}-{collapsed,expanded}.png); at 800x600 and 1600x1000, light and
dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SIZES = ((800, 600), (1600, 1000))
MODES = ("light", "dark")

LONG_CODE_LINE = ('    (Path("notes") / page.with_suffix(".md").name).write_text(to_markdown(text), '
                  'encoding="utf-8")  # one long line: scrolls sideways, never cut off')


def seed_versions_chat(ctx: Any) -> int:
    """A chat whose first reply has three versions (the second on screen) and whose last
    reply stopped at the token limit. Returns its id."""
    from desktop.core.chat.sample_chats import LONG_REPLY, SAMPLE_DRAFTING, SOURCES

    chats = ctx.chats
    chat = chats.create_conversation("Moving my notes to Markdown")
    user = chats.add_message(chat.id, "user", "How do I move ten years of notes to plain "
                             "Markdown files without losing anything?\nI use two apps.")
    replies = []
    for n, text in enumerate(("A short first answer.", LONG_REPLY.replace(
            '    (Path("notes") / page.with_suffix(".md").name).write_text(to_markdown(text))',
            LONG_CODE_LINE), "A third answer, shorter."), start=1):
        chats.set_leaf(chat.id, user.id)
        reply = chats.add_message(chat.id, "assistant", "", state="streaming")
        chats.set_context(reply.id, None, SOURCES if n == 2 else [])
        chats.finish_message(reply.id, "done", text, prompt_tokens=412,
                             completion_tokens=431 if n == 2 else 12, ttft_s=0.21,
                             tokens_per_s=38.5, stop_reason="stop",
                             spec_json=SAMPLE_DRAFTING if n == 2 else None)
        replies.append(reply.id)
    chats.select_version(chat.id, replies[1])
    chats.add_message(chat.id, "user", "And the attachments?")
    last = chats.add_message(chat.id, "assistant", "", state="streaming")
    chats.finish_message(last.id, "done", "Keep them next to the note that uses them, in a "
                         "folder named after the note. Then", completion_tokens=24,
                         ttft_s=0.05, tokens_per_s=40.2, stop_reason="length")
    return chat.id


THINKING = ("The user has 3 apples and buys 2 bags of 4. So 2 × 4 = 8 more apples.\n"
            "3 + 8 = 11. Let me check: 8 + 3 is 11, yes.\n"
            "They asked for a short answer, so one sentence with the sum is enough.")


def seed_thinking_chat(ctx: Any) -> int:
    """A chat with a reasoning model's reply: 12 s of thinking, then the answer."""
    chats = ctx.chats
    chat = chats.create_conversation("Apples")
    chats.add_message(chat.id, "user", "I have 3 apples and buy 2 bags of 4. How many now?")
    reply = chats.add_message(chat.id, "assistant", "", state="streaming")
    chats.finish_message(reply.id, "done", "You have **11 apples**: 3 + 2 × 4 = 11.",
                         prompt_tokens=38, completion_tokens=96, ttft_s=0.12,
                         tokens_per_s=41.0, stop_reason="stop", reasoning=THINKING,
                         reasoning_s=12.4,
                         # the answer repeats its thinking: drafting guessed part of it
                         spec_json='{"drafted": 24, "accepted": 14, "speedup": 1.3}')
    return chat.id


def render_chat_screens(out_dir: Path, ctx: Any) -> list[Path]:
    """chat-view-{W}x{H}-{mode}.png for every size and mode; returns the files written."""
    from PySide6.QtCore import QCoreApplication

    from desktop.ui import theme
    from desktop.ui.chat_view import ChatView

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conversation = seed_versions_chat(ctx)
    messages = ctx.chats.messages(conversation)
    thinking = ctx.chats.messages(seed_thinking_chat(ctx))
    written: list[Path] = []
    for mode in MODES:
        theme.apply_theme(mode)
        for width, height in SIZES:
            view = ChatView()
            view.set_messages(messages)
            view.resize(width, height)
            view.show()
            for _ in range(4):  # layouts, then the documents laid out at their widths
                QCoreApplication.processEvents()
            view.relayout()
            view.clearFocus()  # no keyboard ring in the pictures
            # Show the versioned reply's end: its table, code, sources and buttons.
            view.ensureWidgetVisible(view.widgets[1].copy_button, 0, 40)
            QCoreApplication.processEvents()
            path = out / f"chat-view-{width}x{height}-{mode}.png"
            view.grab().save(str(path))
            written.append(path)
            view.set_messages(thinking)
            for state in ("collapsed", "expanded"):
                view.widgets[1].thinking.set_expanded(state == "expanded")
                for _ in range(4):
                    QCoreApplication.processEvents()
                view.relayout()
                view.verticalScrollBar().setValue(0)
                QCoreApplication.processEvents()
                path = out / f"chat-thinking-{width}x{height}-{mode}-{state}.png"
                view.grab().save(str(path))
                written.append(path)
            view.close()
            view.deleteLater()
    return written


if __name__ == "__main__":  # python -m desktop.ui.screens_chat OUT_DIR
    import os
    import sys
    import tempfile

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop.core.context import AppContext

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        context = AppContext(Path(tmp))
        try:
            for written_path in render_chat_screens(Path(sys.argv[1]), context):
                print(written_path)
        finally:
            context.close()
