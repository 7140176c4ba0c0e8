"""The conversation service: message lifecycle, prompt building, context budget, streaming.

Used alike by the CLI (in its own thread) and the GUI (on a worker thread, with `on_text`
bridged to a Qt signal). The user message is committed before the model is asked, the
reply row exists from the first moment as `streaming`, and its text is flushed to disk at
least every FLUSH_S seconds, so a crash or kill loses at most that much of a reply.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.chat import reasoning, vision
from desktop.core.chat.budget import TURN_OVERHEAD, history_budget, window_start
from desktop.core.chat.templates import (
    ChatFormat,
    alternate,
    fold_system,
    render_parts,
    usable_format,
)
from desktop.core.context import AppContext
from desktop.core.engine import kv_states
from desktop.core.engine.client import Generation, LoadOptions, flash_mode
from desktop.core.engine.remote import RemoteEngine, RemoteGeneration, engine_for, is_remote_ref
from desktop.core.errors import EngineError, HearthError, ModelFileError, TemplateRefused
from desktop.core.models.draft_pairing import draft_for_library
from desktop.core.models.fit import detect_memory, gpu_layer_plan, too_large_warning
from desktop.core.models.gguf import GGUFInfo, read_gguf
from desktop.core.settings import SAMPLING_DEFAULTS
from desktop.core.store.chats import Conversation, Message, title_from
from desktop.core.store.images import ImageStore

FLUSH_S = 0.5
EXCERPT_SHARE = 0.4  # at most this share of the context goes to document excerpts
TextCallback = Callable[[str], None]
# (stage, done, total): "load" in percent while the model loads, "prompt" in tokens while a
# long prompt is read, before the first token.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ModelState:
    path: str
    info: GGUFInfo
    fmt: ChatFormat
    loaded: dict[str, Any]
    gpu_plan: str = ""
    warning: str | None = None  # what the user should know: too large, template replaced
    # A model on a remote server (core/engine/remote.py): it renders its own template, so
    # the prompt goes out as messages, and its chats are marked as leaving this machine.
    remote: RemoteEngine | None = None
    draft_path: str | None = None  # the draft model asked for (loaded["draft_model"]: used)

    @property
    def n_ctx(self) -> int:
        return int(self.loaded.get("n_ctx") or 4096)

    @property
    def is_base_model(self) -> bool:
        return self.remote is None and self.info.chat_template is None  # a server's has one


def drafting_stats(result: dict[str, Any], resume: Message | None = None,
                   earlier_tokens: int = 0) -> str | None:
    """The reply's speculative-decoding stats to store (schema 8's spec_json), from the
    worker's done event: None where drafting was off. A continued reply adds this run's
    drafts to its earlier ones; the speed-up is weighted by the tokens of each run."""
    earlier = resume.spec if resume is not None else {}
    if not result.get("speculative"):
        return json.dumps(earlier) if earlier else None
    drafted = int(result.get("spec_drafted") or 0) + int(earlier.get("drafted") or 0)
    accepted = int(result.get("spec_accepted") or 0) + int(earlier.get("accepted") or 0)
    out: dict[str, Any] = {"drafted": drafted, "accepted": accepted}
    speedup = result.get("spec_speedup_est")
    if speedup is not None:
        new_tokens = int(result.get("completion_tokens") or 0)
        if earlier.get("speedup") is not None and earlier_tokens and new_tokens:
            speedup = ((float(earlier["speedup"]) * earlier_tokens + float(speedup) * new_tokens)
                       / (earlier_tokens + new_tokens))
        out["speedup"] = round(float(speedup), 3)
    elif earlier.get("speedup") is not None:
        out["speedup"] = earlier["speedup"]
    return json.dumps(out)


def excerpts_turn(hits: list[Any], question: str) -> str:
    """The user turn that carries retrieved passages: numbered, so the reply can cite them."""
    blocks = "\n\n".join(f"[{n}] {hit.location()}\n{hit.text}"
                          for n, hit in enumerate(hits, start=1))
    return (f"Excerpts from my documents (cite them by number, like [1]):\n\n"
            f"{blocks}\n\nAnswer from the excerpts when they are relevant and cite "
            f"them. If they do not contain the answer, say so.\n\n"
            f"Question: {question}")


class ChatService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.model: ModelState | None = None
        self._generation: Generation | RemoteGeneration | None = None
        self._stop_requested = threading.Event()
        self._token_counts: dict[tuple[str, int, int], int] = {}
        self.context_start: dict[int, int | None] = {}  # conversation -> first message in context
        self.on_progress: ProgressCallback | None = None  # the window shows it in the reply

    # --- model ---------------------------------------------------------------------
    def load_model(self, path: str | Path, *, n_ctx: int | None = None,
                   n_gpu_layers: int | None = None, n_threads: int | None = None) -> ModelState:
        if is_remote_ref(str(path)):
            return self.use_remote(str(path))
        path = os.path.abspath(Path(path).expanduser())
        settings = self.ctx.settings
        entry = self.ctx.library.find(path)
        own = entry.settings if entry else {}  # per-model defaults beat app defaults
        n_ctx = int(n_ctx or own.get("n_ctx") or settings.get("n_ctx") or 4096)
        mmproj = vision.projector_for(path, own)  # a vision model's projector, if paired
        draft = self._draft_model(path, own)
        flash = flash_mode(own)
        current = self.model
        if (current and current.path == path and self.ctx.engine.loaded
                and bool(current.loaded.get("vision")) == bool(mmproj)
                and current.draft_path == draft
                and current.loaded.get("flash_attn", "auto") == flash
                and current.loaded.get("n_ctx") == min(n_ctx,
                                                       current.info.context_length or n_ctx)):
            return current  # already loaded as asked: no header read, no memory probe
        info = self.check_model(path)
        if n_gpu_layers is None:
            n_gpu_layers = own.get("n_gpu_layers", settings.get("n_gpu_layers"))
        memory = detect_memory()
        if n_gpu_layers is None or n_gpu_layers < 0:
            n_gpu_layers, plan = gpu_layer_plan(info, n_ctx, memory)
        else:
            plan = f"{n_gpu_layers} GPU layers (set by you)" if n_gpu_layers else "CPU (set by you)"
        options = LoadOptions(
            path=path,
            n_ctx=n_ctx,
            n_gpu_layers=int(n_gpu_layers),
            n_threads=n_threads or settings.get("n_threads"),
            state_dir=str(kv_states.states_dir(self.ctx.data_dir))
            if settings.get("kv_states_on_disk", True) else None,
            state_ram_mb=int(settings.get("kv_states_ram_mb") or 1024),
            state_disk_mb=int(settings.get("kv_states_disk_mb") or 2048),
            mmproj=mmproj,
            draft_path=draft,
            flash_attn=flash,
            tuning_file=str(self.ctx.data_dir / "engine-tuning.json"),
        )
        ids = {v: k for k, v in info.special_tokens.items()}
        tokens = {"bos_token": ids.get(info.get("tokenizer.ggml.bos_token_id", -1), ""),
                  "eos_token": ids.get(info.get("tokenizer.ggml.eos_token_id", -1), "")}
        # Before llama.cpp sees the file: a hostile template is refused here.
        fmt, note = usable_format(info.architecture, info.special_tokens, info.chat_template,
                                  **tokens)
        loaded = self.ctx.engine.load(options, self._progress)["info"]
        if not loaded.get("gpu_offload_supported") and options.n_gpu_layers:
            plan = "this llama.cpp build is CPU-only (see the README for GPU builds): CPU"
        too_large = too_large_warning(info, n_ctx, memory)
        # A draft model the worker refused (another vocabulary, unreadable) is said once here.
        draft_note = loaded.get("draft_note")
        self.model = ModelState(path, info, fmt, loaded, plan,
                                " ".join(n for n in (note, too_large, draft_note) if n) or None,
                                draft_path=draft)
        if self.ctx.library.find(path) is None:
            self.ctx.library.add(path)
        self.ctx.library.mark_used(path)
        settings.set("last_model", path)
        return self.model

    def _draft_model(self, path: str, own: dict[str, Any]) -> str | None:
        """The draft model to load beside `path` (speculative decoding): its `draft_model`
        setting ("auto", "off" or a file), else the app's, "auto" by default; none where the
        model's drafting is off altogether."""
        settings = self.ctx.settings
        speculative = own.get("speculative", settings.get("sampling", {}).get("speculative", True))
        if speculative is False:
            return None
        app = settings.get("sampling", {}).get("draft_model", "auto")
        return draft_for_library(self.ctx.library, path, own.get("draft_model", app))

    def use_remote(self, ref: str, api_key: str | None = None) -> ModelState:
        """Chat with a model on a remote server (`remote:MODEL@URL`): nothing is loaded here
        and nothing is sent until a message is; the key comes from the keychain unless
        given. Its template is the server's, so the GGUF fields stay empty."""
        engine = engine_for(self.ctx.settings, ref, api_key)
        info = GGUFInfo(Path(engine.ref), 0, 0, 0, 0, {"general.name": engine.model})
        self.model = ModelState(engine.ref, info, ChatFormat("", "remote", []),
                                {"n_ctx": engine.n_ctx}, f"remote server {engine.host}",
                                remote=engine)
        self.ctx.settings.set("last_model", engine.ref)
        return self.model

    @staticmethod
    def check_model(path: str | Path) -> GGUFInfo:
        """The checks a chat model must pass before anything is loaded or stored: a valid
        header, and not an embedding-only model."""
        info = read_gguf(path)
        if info.is_embedding_model:
            raise ModelFileError(
                f"{Path(path).name} is an embedding model: it turns text into vectors for "
                "document search and cannot chat. Choose a chat model here, and use this one "
                "as the embedding model in Documents.")
        return info

    def _progress(self, event: dict[str, Any]) -> None:
        if self.on_progress is not None:
            self.on_progress(str(event.get("stage")), int(event.get("done") or 0),
                             int(event.get("total") or 0))

    def _require_model(self, conversation: Conversation) -> ModelState:
        path = conversation.model_path or self.ctx.settings.get("last_model")
        if self.model is not None and (path is None or self.model.path == path):
            if self.ctx.engine.loaded or self.model.remote is not None:
                return self.model
        if not path:
            raise HearthError("No chat model is chosen: pick one in the window or pass --model PATH.")
        return self.load_model(path)

    # --- conversations ---------------------------------------------------------------
    def _model_defaults(self, path: str | None) -> dict[str, Any]:
        entry = self.ctx.library.find(path) if path else None
        return entry.settings if entry else {}

    def new_conversation(self, system_prompt: str | None = None,
                         settings: dict[str, Any] | None = None) -> Conversation:
        model_path = self.model.path if self.model else self.ctx.settings.get("last_model")
        if system_prompt is None:
            system_prompt = self._model_defaults(model_path).get(
                "system_prompt", self.ctx.settings.get("system_prompt", ""))
        return self.ctx.chats.create_conversation(
            system_prompt=system_prompt, settings=settings or {}, model_path=model_path)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a chat and its saved KV state (it holds the chat's content in another form),
        and its images that no other chat sends."""
        images = [h for m in self.ctx.chats.all_messages(conversation_id) for h in m.images]
        self.ctx.chats.delete_conversation(conversation_id)
        if images:
            ImageStore(self.ctx.data_dir).delete_unreferenced(
                images, self.ctx.chats.image_references(images))
        for state in kv_states.states_dir(self.ctx.data_dir).glob(f"*/{conversation_id}.kvstate"):
            state.unlink(missing_ok=True)

    def sampling(self, conversation: Conversation) -> dict[str, Any]:
        """Defaults < app settings < the model's defaults < this conversation's settings."""
        merged = {**SAMPLING_DEFAULTS, **self.ctx.settings.get("sampling", {})}
        own = self._model_defaults(conversation.model_path)
        merged.update({k: v for k, v in own.items() if k in SAMPLING_DEFAULTS})
        merged.update({k: v for k, v in conversation.settings.items() if k in SAMPLING_DEFAULTS})
        return merged

    # --- replies ---------------------------------------------------------------------
    def send(self, conversation_id: int, text: str,
             on_text: TextCallback | None = None,
             on_reasoning: TextCallback | None = None,
             images: list[str] | None = None) -> Message:
        user = self.add_user_message(conversation_id, text, images)
        return self.answer(conversation_id, user, on_text, on_reasoning)

    def add_user_message(self, conversation_id: int, text: str,
                         images: list[str] | None = None) -> Message:
        """Store the user's message, durable before any model work (a kill while the model
        loads must not lose it), and title a new chat after it. `images` are image files for
        a vision model: copied into the data dir first (content-addressed), then referenced."""
        text = vision.strip_markers(text).strip()
        if not text and not images:
            raise HearthError("The message is empty.")
        if images and self.model is not None and not self.model.loaded.get("vision"):
            raise HearthError(f"{Path(self.model.path).name} cannot see images: choose a vision "
                              "model (one with its mmproj projector file).")
        hashes = [ImageStore(self.ctx.data_dir).add_file(p) for p in images or []]
        chats = self.ctx.chats
        conversation = chats.conversation(conversation_id)
        user = chats.add_message(conversation_id, "user", text)
        if hashes:
            chats.set_images(user.id, hashes)
            user = chats.message(user.id)
        if not conversation.title:
            chats.update_conversation(conversation_id, title=title_from(text))
        return user

    def answer(self, conversation_id: int, user: Message,
               on_text: TextCallback | None = None,
               on_reasoning: TextCallback | None = None) -> Message:
        """Reply to a stored user message (loading the chat's model if needed). A reasoning
        model's thinking streams to `on_reasoning`, the answer to `on_text`."""
        conversation = self.ctx.chats.conversation(conversation_id)
        sources = self.attach_excerpts(conversation, user)
        return self._respond(conversation, on_text, sources, on_reasoning=on_reasoning)

    @contextmanager
    def all_or_nothing(self) -> Iterator[None]:
        """Store writes made inside happen together or not at all: a new chat and its first
        message appear at once, and a failure (a full disk, a bad collection name) or a kill
        between them leaves no empty chat in the sidebar."""
        with self.ctx.db.transaction():
            yield

    def attach_excerpts(self, conversation: Conversation, user: Message) -> list[dict[str, Any]]:
        """Find passages in the chat's documents and put them into this (newest) user turn.

        Never into the system prompt: earlier turns stay byte-identical, so the KV cache of the
        conversation so far is reused. The excerpts are stored with the message, so the turn
        re-renders the same way on every later turn.
        """
        collections = self.ctx.documents.attached(conversation.id)
        if not collections:
            return []
        from desktop.core.documents.chunk import count_tokens
        from desktop.core.documents.retrieve import search

        earlier = [m for m in self.ctx.chats.messages(conversation.id)
                   if m.role == "user" and m.id != user.id]
        # Follow-ups ("and the second one?") are searched together with the previous question.
        query = user.content if not earlier else f"{earlier[-1].content}\n{user.content}"
        embed, model_id = self.ctx.embedder()
        vector = embed([query])[0] if embed else None
        hits = search(self.ctx.db, query, collections, k=6, vector=vector, model=model_id)
        n_ctx = self.model.n_ctx if self.model else int(self.ctx.settings.get("n_ctx") or 4096)
        budget = int(n_ctx * EXCERPT_SHARE)
        chosen, used = [], 0
        for hit in hits:
            cost = count_tokens(hit.text) + 12
            if used + cost > budget:
                break
            chosen.append(hit)
            used += cost
        if chosen:
            context = excerpts_turn(chosen, user.content)
        else:
            context = ("No passage in my attached documents matched this question; say so if "
                       f"you cannot answer without them.\n\nQuestion: {user.content}")
        sources = [{**hit.as_dict(), "n": n} for n, hit in enumerate(chosen, start=1)]
        self.ctx.chats.set_context(user.id, context, sources)
        return sources

    # --- versions (regenerate, edit, switch) ---------------------------------------------
    def branch(self, conversation_id: int) -> list[Message]:
        """The messages on screen: the active version of each turn."""
        return self.ctx.chats.messages(conversation_id)

    def switch_version(self, conversation_id: int, message_id: int) -> list[Message]:
        """Show another version of a message (‹ 2/3 ›) and what was written after it; returns
        the new branch. The prompt of the next turn is built from this branch only."""
        return self.ctx.chats.select_version(conversation_id, message_id)

    def regenerate(self, conversation_id: int, on_text: TextCallback | None = None,
                   message_id: int | None = None,
                   on_reasoning: TextCallback | None = None) -> Message:
        """A new version of a reply (the last one, or `message_id`): the earlier versions are
        kept as its siblings, under the same user message."""
        chats = self.ctx.chats
        messages = chats.messages(conversation_id)
        if message_id is not None:
            at = next((i for i, m in enumerate(messages) if m.id == message_id), None)
            if at is None or messages[at].role != "assistant":
                raise HearthError("That reply is not on the branch on screen; show it first.")
            messages = messages[:at]
        while messages and messages[-1].role == "assistant":
            messages.pop()
        if not messages:
            raise HearthError("There is nothing to regenerate in this conversation.")
        last_user = messages[-1]
        chats.set_leaf(conversation_id, last_user.id)
        return self._respond(chats.conversation(conversation_id), on_text, last_user.sources,
                             on_reasoning=on_reasoning)

    def regenerate_reply(self, conversation_id: int, message_id: int,
                         on_text: TextCallback | None = None,
                         on_reasoning: TextCallback | None = None) -> Message:
        """regenerate() with the reply first (the window's background runner appends on_text)."""
        return self.regenerate(conversation_id, on_text, message_id, on_reasoning)

    def edit_message(self, conversation_id: int, message_id: int, text: str,
                     on_text: TextCallback | None = None,
                     on_reasoning: TextCallback | None = None) -> Message:
        """Edit any user message: the edited text becomes a new version of it (a sibling, the
        old one and its replies stay stored) and a new reply is written after it."""
        text = text.strip()
        if not text:
            raise HearthError("The message is empty.")
        chats = self.ctx.chats
        original = chats.message(message_id)
        if original.conversation_id != conversation_id or original.role != "user":
            raise HearthError("Only your own messages in this chat can be edited.")
        chats.set_leaf(conversation_id, original.parent_id)
        return self.send(conversation_id, text, on_text, on_reasoning)

    def edit_last_user_message(self, conversation_id: int, text: str,
                               on_text: TextCallback | None = None,
                               on_reasoning: TextCallback | None = None) -> Message:
        users = [m for m in self.ctx.chats.messages(conversation_id) if m.role == "user"]
        if not users:
            raise HearthError("There is no message to edit.")
        return self.edit_message(conversation_id, users[-1].id, text, on_text, on_reasoning)

    def stop(self) -> None:
        """Ask the running reply to stop (from any thread); the worker sees it between tokens."""
        self._stop_requested.set()
        generation = self._generation
        if generation is not None:
            generation.cancel()

    def _count(self, model: ModelState, messages: list[Message]) -> list[int]:
        keys = [(model.path, m.id, len(m.context or m.content)) for m in messages]
        missing = [(k, m.context or m.content) for k, m in zip(keys, messages, strict=True)
                   if k not in self._token_counts]
        if missing:
            counts = self.ctx.engine.count_tokens([text for _, text in missing])
            for (key, _), count in zip(missing, counts, strict=True):
                self._token_counts[key] = count
        return [self._token_counts[k] for k in keys]

    def build_prompt(self, conversation: Conversation, model: ModelState,
                     params: dict[str, Any], exclude: int | None = None) -> list[dict[str, Any]]:
        history = [m for m in self.ctx.chats.messages(conversation.id)
                   if m.role in ("user", "assistant") and (m.content or m.images)
                   and m.id != exclude]
        system = conversation.system_prompt.strip()
        vision.require_sight(history, model)
        if model.remote is not None:
            return self._remote_messages(conversation, model, params, history, system)
        fixed = (self.ctx.engine.count_tokens([system])[0] + TURN_OVERHEAD) if system else 0
        budget = history_budget(model.n_ctx, fixed + TURN_OVERHEAD,
                                int(params.get("max_tokens") or 512))
        sees = bool(model.loaded.get("vision"))
        images, paths = ImageStore(self.ctx.data_dir), list[str]()
        counts = self._count(model, history)
        if sees:  # image positions count in the budget too
            counts = vision.image_costs(counts, history, model.path, images, self.ctx.engine,
                                        self._token_counts)
        start = window_start(counts, [m.role for m in history], budget)
        self.context_start[conversation.id] = history[start].id if start and history else None
        # Earlier thinking goes back to the model only when its template reads it (Qwen3 uses
        # it within a tool-call chain only): otherwise the answer alone, so the prefix holds.
        past = reasoning.template_options(model.fmt.source)["past_reasoning"]
        turns = alternate([{"role": m.role, "content": vision.turn_content(m, paths, images, sees),
                            **({"reasoning_content": m.reasoning} if past and m.reasoning
                               else {})}
                           for m in history[start:]])
        options = self.thinking_options(conversation, model)
        if not system:
            return vision.expand_images(render_parts(model.fmt, turns, options=options), paths)
        try:
            return vision.expand_images(
                render_parts(model.fmt, [{"role": "system", "content": system}, *turns],
                             options=options), paths)
        except TemplateRefused:
            # Some templates (Gemma 2, early Mistral) refuse a system turn: the instructions
            # then open the first user message, the same way every turn, so the cache holds.
            return vision.expand_images(
                render_parts(model.fmt, fold_system(system, turns), options=options), paths)

    def _remote_messages(self, conversation: Conversation, model: ModelState,
                         params: dict[str, Any], history: list[Message],
                         system: str) -> list[dict[str, Any]]:
        """The prompt for a remote server: role/content messages (the newest user turn holds
        its document excerpts), windowed like a local prompt with estimated token counts (no
        tokenizer here: about 3 characters a token, never fewer than words)."""
        from desktop.core.documents.chunk import count_tokens

        def cost(text: str) -> int:
            return max(count_tokens(text), len(text) // 3)

        budget = history_budget(model.n_ctx, cost(system) + 2 * TURN_OVERHEAD,
                                int(params.get("max_tokens") or 512))
        start = window_start([cost(m.context or m.content) for m in history],
                             [m.role for m in history], budget)
        self.context_start[conversation.id] = history[start].id if start and history else None
        turns = alternate([{"role": m.role, "content": m.context or m.content}
                           for m in history[start:]])
        return [{"role": "system", "content": system}, *turns] if system else turns

    # --- reasoning models ------------------------------------------------------------
    def reasoning_format(self, model: ModelState) -> str | None:
        """How this model writes its thinking (None: it does not, as far as its template
        and vocabulary tell)."""
        return reasoning.detect_format(model.fmt.source, frozenset(model.info.special_tokens))

    def thinking_controls(self, model: ModelState) -> dict[str, bool]:
        """Which per-chat controls this model's template offers: `thinking_switch` (on/off
        through `enable_thinking`) and `effort` (gpt-oss's `reasoning_effort`)."""
        options = reasoning.template_options(model.fmt.source)
        return {"thinking_switch": options["thinking_switch"], "effort": options["effort"]}

    def thinking_options(self, conversation: Conversation, model: ModelState) -> dict[str, Any]:
        """Template variables from the chat's settings `thinking` (bool, default on) and
        `reasoning_effort` ("low", "medium", "high"); only those the template reads, so
        other models' prompts stay exactly as they were."""
        controls = self.thinking_controls(model)
        options: dict[str, Any] = {}
        if controls["thinking_switch"]:
            options["enable_thinking"] = bool(conversation.settings.get("thinking", True))
        effort = conversation.settings.get("reasoning_effort")
        if controls["effort"] and effort in reasoning.EFFORTS:
            options["reasoning_effort"] = effort
        return options

    def continue_reply(self, conversation_id: int,
                       on_text: TextCallback | None = None,
                       on_reasoning: TextCallback | None = None) -> Message:
        """Go on writing the last reply (interrupted by a crash, stopped, or cut by length)."""
        messages = self.ctx.chats.messages(conversation_id)
        if not messages or messages[-1].role != "assistant":
            raise HearthError("There is no reply to continue in this conversation.")
        last = messages[-1]
        if not last.content:
            return self.regenerate(conversation_id, on_text, on_reasoning=on_reasoning)
        if is_remote_ref(self.ctx.chats.conversation(conversation_id).model_path):
            raise HearthError("A reply from a remote server cannot be continued (the server "
                              "takes whole messages); regenerate it instead.")
        return self._respond(self.ctx.chats.conversation(conversation_id), on_text,
                             last.sources, resume=last, on_reasoning=on_reasoning)

    def _mark_remote(self, conversation: Conversation, engine: RemoteEngine) -> Conversation:
        """Record in the chat's settings that it goes to this host (every host it ever went
        to stays listed: what left this machine cannot be called back)."""
        hosts = list(conversation.settings.get("remote_hosts") or [])
        if engine.host in hosts:
            return conversation
        return self.ctx.chats.update_conversation(
            conversation.id, settings={**conversation.settings,
                                       "remote_hosts": [*hosts, engine.host]})

    def _respond(self, conversation: Conversation, on_text: TextCallback | None,
                 sources: list[dict[str, Any]] | None = None,
                 resume: Message | None = None,
                 on_reasoning: TextCallback | None = None) -> Message:
        chats = self.ctx.chats
        model = self._require_model(conversation)
        if conversation.model_path != model.path:
            chats.update_conversation(conversation.id, model_path=model.path)
        if model.remote is not None:  # marked before anything leaves (window and exports)
            conversation = self._mark_remote(conversation, model.remote)
        params = self.sampling(conversation)
        params["stop"] = model.fmt.stop
        params["session"] = str(conversation.id)  # the worker keeps a KV state per chat
        if sources:
            params["documents"] = True  # answers repeat the passages: the worker drafts eagerly
        fmt = self.reasoning_format(model)
        if fmt is not None:
            params["reasoning_format"] = fmt  # the worker splits thinking from the answer
        thought: list[str] = []
        if resume is None:
            parts = self.build_prompt(conversation, model, params)
            reply = chats.add_message(conversation.id, "assistant", "", state="streaming")
            if sources:
                chats.set_context(reply.id, None, sources)  # the reply lists what it could cite
            text: list[str] = []
            earlier_tokens = 0
        else:
            # The prompt up to the reply's turn, then the partial reply itself as the start of
            # the model's turn: the model carries on from its last word.
            parts = self.build_prompt(conversation, model, params, exclude=resume.id)
            parts.append({"text": resume.content, "special": False, "generated": True})
            reply = resume
            chats.resume_message(reply.id)
            text = [resume.content]
            thought = [resume.reasoning] if resume.reasoning else []
            # The reply's token count is its whole length, not only what this run adds (an
            # interrupted reply never got a count: ask the tokenizer).
            earlier_tokens = (resume.completion_tokens if resume.completion_tokens is not None
                              else self.ctx.engine.count_tokens([resume.content])[0])
        self._stop_requested.clear()
        flushed_at = time.monotonic()
        # With the API server on, the reply waits for the requests queued before it (one
        # generation at a time, in arrival order); a Stop meanwhile cancels it at once below.
        turn = self.ctx.engine_turn(
            None if model.remote is not None else f"chat {conversation.id}")
        try:
            turn.wait()
            generation = (model.remote.generate(parts, params) if model.remote is not None
                          else self.ctx.engine.generate(parts, params))
            generation.on_progress = self._progress
            self._generation = generation
            if self._stop_requested.is_set():
                generation.cancel()
            for thinking, piece in generation.pieces():
                if thinking:
                    thought.append(thinking)
                    if on_reasoning is not None:
                        on_reasoning(thinking)
                if piece:
                    text.append(piece)
                    if on_text is not None:
                        on_text(piece)
                now = time.monotonic()
                if now - flushed_at >= FLUSH_S:
                    chats.set_content(reply.id, "".join(text),
                                      "".join(thought) if thought else None)
                    flushed_at = now
            result = generation.result or {}
        except EngineError as exc:
            chats.finish_message(reply.id, "failed", "".join(text), error=exc.message,
                                 reasoning="".join(thought) or None)
            raise
        except BaseException:
            # Ctrl+C in the CLI, or anything unexpected: keep what was streamed.
            chats.finish_message(reply.id, "stopped", "".join(text), stop_reason="interrupted",
                                 reasoning="".join(thought) or None)
            raise
        finally:
            self._generation = None
            turn.release()
        state = "stopped" if result.get("stop_reason") == "cancelled" else "done"
        return chats.finish_message(
            reply.id, state, "".join(text),
            prompt_tokens=result.get("prompt_tokens"),
            cached_tokens=result.get("cached_tokens"),
            completion_tokens=None if result.get("completion_tokens") is None
            else earlier_tokens + int(result["completion_tokens"]),
            ttft_s=result.get("ttft_s"),
            tokens_per_s=result.get("tokens_per_s"),
            stop_reason=result.get("stop_reason"),
            reasoning="".join(thought) or None,
            reasoning_s=result.get("reasoning_s") if result.get("reasoning_s") is not None
            else (resume.reasoning_s if resume is not None else None),
            spec_json=drafting_stats(result, resume, earlier_tokens),
        )
