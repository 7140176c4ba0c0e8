"""Small conversation operations the window needs, so the UI calls one service instead of
reaching into the chat store, the document index and the model library itself.

Each function takes the AppContext and plain values and returns plain values; the window
runs them (on or off the GUI thread) and refreshes from what they return.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.core.engine.client import flash_mode
from desktop.core.errors import HearthError
from desktop.core.settings import SAMPLING_DEFAULTS

# The rows the window shows, re-exported ("as"): the UI imports services, never the store.
from desktop.core.store.chats import Conversation as Conversation
from desktop.core.store.chats import Message as Message

if TYPE_CHECKING:
    from desktop.core.chat.service import ChatService, ModelState
    from desktop.core.context import AppContext
    from desktop.core.models.catalog import CatalogEntry
    from desktop.core.models.fit import Fit
    from desktop.core.models.library import ModelEntry

GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")


# --- listing ---------------------------------------------------------------------------
def date_group(updated_at: float, now: float | None = None) -> str:
    """Which sidebar group a chat last changed at `updated_at` belongs to (local calendar
    days, as a user reads "Yesterday")."""
    today = dt.datetime.fromtimestamp(now if now is not None else dt.datetime.now().timestamp())
    day = dt.datetime.fromtimestamp(updated_at).date()
    age = (today.date() - day).days
    if age <= 0:
        return GROUPS[0]
    if age == 1:
        return GROUPS[1]
    if age <= 7:
        return GROUPS[2]
    return GROUPS[3]


def list_conversations(ctx: AppContext, query: str = "") -> list[Conversation]:
    """Chats newest first; with a query, those whose title or messages match."""
    query = query.strip()
    return ctx.chats.search(query) if query else ctx.chats.conversations()


def conversation(ctx: AppContext, conversation_id: int) -> Conversation:
    return ctx.chats.conversation(conversation_id)


def messages(ctx: AppContext, conversation_id: int) -> list[Message]:
    return ctx.chats.messages(conversation_id)


def rename(ctx: AppContext, conversation_id: int, title: str) -> Conversation:
    title = " ".join(title.split())
    if not title:
        raise HearthError("A chat needs a title: type at least one character.")
    return ctx.chats.update_conversation(conversation_id, title=title[:200])


def set_model(ctx: AppContext, conversation_id: int, model_path: str) -> None:
    ctx.chats.update_conversation(conversation_id, model_path=model_path)


def discard_if_empty(ctx: AppContext, conversation_id: int) -> bool:
    """Delete a chat that never got a message (a "New chat" the user left, maybe after
    attaching a collection), with its dropped-files collection; True if it was deleted."""
    try:
        if ctx.chats.messages(conversation_id):
            return False
    except HearthError:
        return False
    own = [c["id"] for c in ctx.documents.collections(include_chat=True)
           if c.get("conversation_id") == conversation_id]
    if any(ctx.indexer.busy_with(cid) for cid in own):
        return False  # files dropped on it are still being read: the user is not done
    for cid in own:
        ctx.documents.delete_collection(cid)
    ctx.chats.delete_conversation(conversation_id)
    return True


def export_name(ctx: AppContext, conversation_id: int) -> str:
    """A file name (without folder) for exporting a chat: its title, made safe."""
    title = ctx.chats.conversation(conversation_id).title or "chat"
    name = "".join(c if c.isalnum() or c in " -_" else "_" for c in title)[:60].strip()
    return f"{name or 'chat'}.md"


def export(ctx: AppContext, conversation_id: int, path: str | Path) -> Path:
    from desktop.core.store.export import write_export

    return Path(write_export(ctx.chats, conversation_id, str(path)))


# --- settings ----------------------------------------------------------------------------
def chat_settings(ctx: AppContext, service: ChatService,
                  conversation_id: int | None) -> tuple[str, dict[str, Any]]:
    """The system prompt and sampling a chat uses (for a chat not created yet, the defaults)."""
    if conversation_id is not None:
        chat = ctx.chats.conversation(conversation_id)
        return chat.system_prompt, service.sampling(chat)
    return (ctx.settings.get("system_prompt", ""),
            {**SAMPLING_DEFAULTS, **ctx.settings.get("sampling", {})})


def save_chat_settings(ctx: AppContext, conversation_id: int | None, system: str,
                       sampling: dict[str, Any], make_default: bool = False) -> None:
    if conversation_id is not None:
        # Merged, not replaced: the chat's other settings (thinking, the remote hosts it went
        # to) are not the dialog's to drop.
        own = ctx.chats.conversation(conversation_id).settings
        ctx.chats.update_conversation(conversation_id, system_prompt=system,
                                      settings={**own, **sampling})
    if make_default or conversation_id is None:
        ctx.settings.values["system_prompt"] = system
        ctx.settings.set("sampling", sampling)


def wanted_load(ctx: AppContext, path: str) -> dict[str, Any]:
    """The context length, GPU layers and flash attention a model should be loaded with now:
    its own defaults, else the app's (None layers: automatic; flash attention is per model)."""
    entry = ctx.library.find(path)
    own = entry.settings if entry else {}
    n_ctx = int(own.get("n_ctx") or ctx.settings.get("n_ctx") or 4096)
    layers = own.get("n_gpu_layers", ctx.settings.get("n_gpu_layers"))
    return {"n_ctx": n_ctx, "n_gpu_layers": None if layers is None or layers < 0 else int(layers),
            "flash_attn": flash_mode(own)}


# How a reload names the flash attention it changed to ("Reloading X with flash attention off").
FLASH_WORDS = {"auto": "automatic flash attention", "on": "flash attention on",
               "off": "flash attention off"}


def reload_reason(ctx: AppContext, model: ModelState | None,
                  requested: dict[str, Any] | None = None) -> str | None:
    """What changed since the loaded model was loaded ("context 512"), or None when its
    current settings are what it runs with. `requested` is what the last load asked for."""
    if model is None or model.remote is not None:
        return None  # a remote server's model: nothing is loaded here
    want = wanted_load(ctx, model.path)
    changes = []
    trained = model.info.context_length or want["n_ctx"]
    if min(want["n_ctx"], trained) != model.n_ctx:
        changes.append(f"context {want['n_ctx']}")
    asked = (requested or {}).get("n_gpu_layers", want["n_gpu_layers"])
    if asked != want["n_gpu_layers"]:
        layers = want["n_gpu_layers"]
        changes.append("automatic GPU layers" if layers is None else
                       "CPU only" if layers == 0 else f"{layers} GPU layers")
    if model.loaded.get("flash_attn", "auto") != want["flash_attn"]:
        changes.append(FLASH_WORDS[want["flash_attn"]])
    return ", ".join(changes) or None


def reload_model(ctx: AppContext, service: ChatService) -> ModelState:
    """Load the current model again with its current settings (call off the GUI thread)."""
    model = service.model
    if model is None:
        raise HearthError("No model is loaded.")
    want = wanted_load(ctx, model.path)
    ctx.engine.unload()  # a loaded model with the same context would otherwise be kept
    return service.load_model(model.path, n_ctx=want["n_ctx"],
                              n_gpu_layers=want["n_gpu_layers"])


# --- collections -------------------------------------------------------------------------
def collection_choices(ctx: AppContext, conversation_id: int | None) -> list[dict[str, Any]]:
    """The named collections, each with whether this chat answers from it."""
    attached = set(ctx.documents.attached(conversation_id)) if conversation_id else set()
    return [{**c, "attached": c["id"] in attached} for c in ctx.documents.collections()]


def set_collection(ctx: AppContext, conversation_id: int, collection_id: int,
                   attached: bool) -> None:
    if attached:
        ctx.documents.attach(conversation_id, collection_id)
    else:
        ctx.documents.detach(conversation_id, collection_id)


def source_names(ctx: AppContext, conversation_id: int | None) -> list[str]:
    """Names of the collections a chat answers from ("files dropped here" for its own)."""
    if conversation_id is None:
        return []
    attached = ctx.documents.attached(conversation_id)
    if not attached:
        return []
    by_id = {c["id"]: c["name"] for c in ctx.documents.collections(include_chat=True)}
    return ["files dropped here" if by_id.get(cid, "").startswith("chat:") else by_id.get(cid, "")
            for cid in attached]


def drop_collection(ctx: AppContext, conversation_id: int) -> int:
    """The collection that files dropped on this chat go into (made on first use)."""
    return ctx.documents.chat_collection(conversation_id)


# --- models ------------------------------------------------------------------------------
def chat_models(ctx: AppContext) -> list[ModelEntry]:
    """Models that can chat (embedding models serve Documents)."""
    return [e for e in ctx.library.list() if not e.is_embedding]


def model_entry(ctx: AppContext, path: str | None) -> ModelEntry | None:
    return ctx.library.find(path) if path else None


def adopt_chosen_model(ctx: AppContext) -> bool:
    """A model chosen elsewhere (CLI, settings) joins the library; reads the file's header,
    so call it off the GUI thread. True if it was added."""
    path = ctx.settings.get("last_model")
    if not path or ctx.library.find(path) is not None or not Path(path).is_file():
        return False
    ctx.library.add(path)
    return True


def choose_default_model(ctx: AppContext, models: list[ModelEntry]) -> str | None:
    """The chosen model, or, with none chosen yet (right after the first download), the
    newest chat model, which is then remembered."""
    current = ctx.settings.get("last_model")
    if current:
        return str(current)
    latest = ctx.library.latest_chat_model(models)
    if latest is None:
        return None
    ctx.settings.set("last_model", latest.path)
    return latest.path


@dataclass
class StartView:
    """What the empty window shows, decided off the GUI thread once the library is read."""
    has_model: bool
    recommended: CatalogEntry | None = None
    fit: Fit | None = None
    machine: str = ""


def start_view(ctx: AppContext) -> StartView:
    """First run: register the starter model (if installed), read the library, and pick the
    best recommended chat model that fits this machine (reads memory: call off-thread)."""
    if not ctx.library.list() and not ctx.settings.get("starter_registered"):
        ctx.ensure_starter()
    models = chat_models(ctx)
    if models or ctx.settings.get("last_model"):
        return StartView(True)
    return recommend_first_model(ctx)


def recommend_first_model(ctx: AppContext) -> StartView:
    from desktop.core.models.catalog import load_catalog
    from desktop.core.models.fit import detect_memory, estimate_from_size, judge

    memory = detect_memory()
    # On a CPU a 3B model answers at reading speed; larger ones fit but feel slow.
    cpu_limit = 2.5e9
    n_ctx = int(ctx.settings.get("n_ctx") or 4096)
    order = {"gpu_full": 0, "gpu_partial": 1, "cpu": 2}
    best: tuple[tuple[int, int], CatalogEntry, Fit] | None = None
    for entry in load_catalog():
        if entry.kind != "chat" or "coder" in entry.name.lower() or entry.reasoning:
            # A first model is for chatting and answers at once: the code and reasoning
            # models (minutes of thinking on a CPU) are later choices.
            continue
        fit = judge(estimate_from_size(entry.size, entry.model_file().quant, n_ctx), memory)
        if fit.label not in order or (fit.label != "gpu_full" and entry.size > cpu_limit):
            continue
        # Where it runs best first, then the largest (the catalog's quality per gigabyte).
        rank = (order[fit.label], -entry.size)
        if best is None or rank < best[0]:
            best = (rank, entry, fit)
    machine = (f"{memory.available_ram / 1e9:.1f} GB RAM available"
               + (f", {memory.free_vram / 1e9:.1f} GB free on {memory.gpu_name}"
                  if memory.free_vram else ""))
    if best is None:
        return StartView(False, None, None, machine)
    return StartView(False, best[1], best[2], machine)
