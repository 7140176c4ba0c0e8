"""A few realistic chats for screenshots and UI tests: dated over several weeks (so every
sidebar group shows), one with a long Markdown reply that cites document passages."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.core.context import AppContext

DAY = 86_400.0

# Paragraphs are one line each: chat replies keep single newlines as line breaks.
LONG_REPLY = """Here is a plan for **moving your notes to plain Markdown** files [1], with the trade-offs of each step.

## 1. Export what you have

Most note apps export to Markdown or HTML. Keep the originals until the end: the export can drop attachments [2].

| Tool | Export format | Keeps attachments |
|:-----|:--------------|:-----------------:|
| Notes app | HTML | no |
| Wiki | Markdown | yes |
| Word files | DOCX | yes |

> Keep a copy of the export untouched: every later step works on a copy.

## 2. Convert and clean

```python
from pathlib import Path

for page in Path("export").rglob("*.html"):
    text = page.read_text(encoding="utf-8")
    (Path("notes") / page.with_suffix(".md").name).write_text(to_markdown(text))
```

- Fix the links between pages (they usually point at the old app).
- Put images next to the note that uses them.
- Check a handful of notes by hand before converting everything.

## 3. Decide on a folder layout

1. One folder per area of life (work, home, reading).
2. Dates in file names only for journals.
3. No folder deeper than two levels: search finds the rest.

That is all you need; the rest is habit.
"""

SOURCES = [
    {"n": 1, "path": "/home/ada/Documents/notes-guide.pdf", "page": 3, "lines": None,
     "heading": "Plain text", "score": 0.81, "text": "Plain Markdown files outlive every "
     "note app: any editor opens them, and they diff well.",
     "location": "notes-guide.pdf, page 3"},
    {"n": 2, "path": "/home/ada/Documents/export-checklist.md", "page": None,
     "lines": [12, 30], "heading": "Attachments", "score": 0.64,
     "text": "Exports often drop attachments: keep the originals until you have checked.",
     "location": "export-checklist.md, lines 12-30"},
]


# What drafting did for the sample document answer (messages.spec_json, schema 8).
SAMPLE_DRAFTING = '{"drafted": 212, "accepted": 155, "speedup": 1.8}'


def seed_sample_chats(ctx: AppContext, now: float | None = None) -> int:
    """Write the sample chats into `ctx`'s database; returns the id of the long one."""
    now = time.time() if now is None else now
    chats = ctx.chats
    older = [("Sourdough starter schedule", 40), ("Tax questions for 2025", 12),
             ("Birthday gift ideas", 5), ("Rust lifetimes, explained", 3),
             ("Trip to Lisbon: three days", 1)]
    for title, days in older:
        chat = chats.create_conversation(title)
        chats.add_message(chat.id, "user", f"Help me with: {title.lower()}")
        chats.finish_message(chats.add_message(chat.id, "assistant", "", state="streaming").id,
                             "done", "Happy to help. First, a few questions…",
                             completion_tokens=9, tokens_per_s=41.0)
        _set_time(ctx, chat.id, now - days * DAY)
    chat = chats.create_conversation("Moving my notes to Markdown")
    user = chats.add_message(chat.id, "user", "How do I move ten years of notes to plain "
                             "Markdown files without losing anything?")
    chats.set_context(user.id, None, SOURCES)
    reply = chats.add_message(chat.id, "assistant", "", state="streaming")
    chats.set_context(reply.id, None, SOURCES)
    # A document answer repeats its passages: speculative decoding drafted part of it.
    chats.finish_message(reply.id, "done", LONG_REPLY, prompt_tokens=412,
                         completion_tokens=431, ttft_s=0.21, tokens_per_s=38.5,
                         stop_reason="stop", spec_json=SAMPLE_DRAFTING)
    _set_time(ctx, chat.id, now - 600)
    return chat.id


def _set_time(ctx: AppContext, conversation_id: int, when: float) -> None:
    ctx.db.execute("UPDATE conversations SET created_at = ?, updated_at = ? WHERE id = ?",
                   (when, when, conversation_id))
    ctx.db.execute("UPDATE messages SET created_at = ? WHERE conversation_id = ?",
                   (when, conversation_id))
