"""Bringing what an importer found into Hearth: a preview that says what is new, then the
import itself, through the chat store and the app's one document indexer.

Idempotent: every imported conversation keeps `{"imported_from": {"app", "id"}}` in its
settings, and a conversation whose key is already there is not imported again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.core.importers.detect import scan
from desktop.core.importers.model import (
    APP_NAMES,
    Found,
    ImportedCollection,
    ImportedConversation,
    Problem,
    shown,
)
from desktop.core.store.chats import ChatStore, title_from

if TYPE_CHECKING:
    from desktop.core.context import AppContext
    from desktop.core.documents.indexer import IndexJob

NEW, ALREADY, EMPTY = "new", "already imported", "empty"


@dataclass
class PreviewItem:
    conversation: ImportedConversation
    status: str  # NEW, ALREADY or EMPTY

    @property
    def title(self) -> str:
        return shown_title(self.conversation)


@dataclass
class CollectionItem:
    collection: ImportedCollection
    status: str  # NEW or "add folders" to an existing Hearth collection of that name
    missing: list[str] = field(default_factory=list)  # folders no longer on disk


@dataclass
class Preview:
    found: Found
    items: list[PreviewItem]
    collections: list[CollectionItem]

    @property
    def app_name(self) -> str:
        return APP_NAMES[self.found.app]

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def problems(self) -> list[Problem]:
        return self.found.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.found.app, "source": self.found.source,
            "conversations": [{"title": i.title, "id": i.conversation.source_id,
                               "messages": len(i.conversation.messages), "status": i.status,
                               "created_at": i.conversation.created_at,
                               "updated_at": i.conversation.updated_at}
                              for i in self.items],
            "collections": [{"name": c.collection.name, "folders": c.collection.folders,
                             "missing": c.missing, "status": c.status}
                            for c in self.collections],
            "problems": [{"where": p.where, "error": p.message} for p in self.problems],
        }


@dataclass
class ImportReport:
    added: list[tuple[int, str, int]] = field(default_factory=list)  # id, title, messages
    already: int = 0
    empty: int = 0
    collections: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    jobs: list[IndexJob] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(n for _, _, n in self.added)


def shown_title(conversation: ImportedConversation) -> str:
    if conversation.title:
        return conversation.title
    first = next((m.content for m in conversation.messages if m.role == "user"), "")
    return title_from(first) if first else "Untitled chat"


def imported_keys(chats: ChatStore) -> set[tuple[str, str]]:
    """(app, id) of every conversation imported before."""
    keys = set()
    for conversation in chats.conversations():
        origin = conversation.settings.get("imported_from")
        if isinstance(origin, dict) and origin.get("app") and origin.get("id"):
            keys.add((str(origin["app"]), str(origin["id"])))
    return keys


def make_preview(ctx: AppContext, path: Path | str, app: str | None = None) -> Preview:
    """Read `path` (slow for big exports: call it off the GUI thread) and say, item by item,
    what an import would do."""
    found = scan(path, app)
    keys = imported_keys(ctx.chats)
    items = []
    for conversation in found.conversations:
        if not conversation.messages:
            status = EMPTY
        elif conversation.key in keys:
            status = ALREADY
        else:
            status = NEW
            keys.add(conversation.key)  # the same chat twice in one source is one chat
        items.append(PreviewItem(conversation, status))
    names = {c["name"] for c in ctx.documents.collections()}
    collections = [CollectionItem(c, NEW if c.name not in names else "add folders",
                                  [f for f in c.folders if not os.path.isdir(f)])
                   for c in found.collections]
    return Preview(found, items, collections)


def run_import(ctx: AppContext, preview: Preview, *, index: bool = True,
               progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Write the new conversations (each in one transaction: all of it or nothing) and queue
    the LocalDocs folders on the app's indexer. Safe to run twice: keys are checked again."""
    report = ImportReport(problems=list(preview.problems))
    keys = imported_keys(ctx.chats)
    todo = [i for i in preview.items if i.status != EMPTY]
    report.empty = len(preview.items) - len(todo)
    for n, item in enumerate(todo, start=1):
        conversation = item.conversation
        if conversation.key in keys:
            report.already += 1
        else:
            saved = save_conversation(ctx.chats, conversation)
            keys.add(conversation.key)
            report.added.append((saved, shown_title(conversation), len(conversation.messages)))
        if progress is not None:
            progress(n, len(todo))
    for entry in preview.collections:
        report.collections.append(_import_collection(ctx, entry, report, index))
    return report


def save_conversation(chats: ChatStore, conversation: ImportedConversation) -> int:
    """One imported conversation through the store's own API (each message continues the
    branch on screen), then its original times. Returns the new conversation's id."""
    db = chats.db
    now = time.time()
    times = [m.created_at for m in conversation.messages if m.created_at]
    created = conversation.created_at or (min(times) if times else None) or \
        conversation.updated_at or now
    updated = max([conversation.updated_at or 0, *times, created])
    with db.transaction():
        saved = chats.create_conversation(
            shown_title(conversation), system_prompt=conversation.system_prompt,
            settings={"imported_from": {"app": conversation.app,
                                        "id": conversation.source_id}})
        for message in conversation.messages:
            row = chats.add_message(saved.id, message.role, message.content)
            when = message.created_at or created
            # The store stamps "now"; an imported message keeps the time it was written.
            db.execute("UPDATE messages SET created_at = ?, finished_at = ? WHERE id = ?",
                       (when, when, row.id))
        db.execute("UPDATE conversations SET created_at = ?, updated_at = ? WHERE id = ?",
                   (created, updated, saved.id))
    return saved.id


def _import_collection(ctx: AppContext, entry: CollectionItem, report: ImportReport,
                       index: bool) -> dict[str, Any]:
    collection = entry.collection
    present = [f for f in collection.folders if f not in entry.missing and os.path.isdir(f)]
    for folder in collection.folders:
        if folder not in present:
            report.problems.append(Problem(
                f"LocalDocs collection “{collection.name}”",
                f"its folder {shown(folder)} is not on this computer any more, so it was "
                "left out."))
    result: dict[str, Any] = {"name": collection.name, "folders": present,
                              "status": entry.status, "collection_id": None}
    if not present:
        return result
    documents = ctx.documents
    collection_id = documents.collection_id(collection.name, create=True)
    result["collection_id"] = collection_id
    if index:
        # The indexer remembers the folders and skips files it already has: a second import
        # finds nothing new to do.
        report.jobs.append(ctx.indexer.submit(collection_id, present))
    return result
