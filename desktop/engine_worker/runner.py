"""llama.cpp behind the worker protocol. The only module (with reference.py) using llama_cpp.

Generation drives llama_decode and llama.cpp's own sampler chain directly, one token at a
time, and detokenizes only the new token (holding back incomplete UTF-8), so the per-token
cost is llama.cpp's plus a few microseconds. The KV cache is reused for the longest common
token prefix with the previous request; assistant replies are kept as the exact token ids
that were generated, so re-rendering a conversation never changes its prefix.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Event, Lock
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_lib

from desktop.core.chat.reasoning import ReasoningParser
from desktop.core.errors import EngineError, ModelFileError
from desktop.core.models.gguf import read_gguf
from desktop.engine_worker.backend_sampling import AttachedSampler, offloadable
from desktop.engine_worker.decode_loop import (
    MAX_DRAFT,
    TokenStream,
    effective_flash,
    flash_attention,
    narrow_on_cpu,
    warm_up,
)
from desktop.engine_worker.draft_model import DraftModel, load_draft
from desktop.engine_worker.embedder import PACK_TOKENS, Embedder
from desktop.engine_worker.flash_choice import Verdicts, measure, verdict, verdict_key
from desktop.engine_worker.flash_prefill import FlashPrefill, side_flash, suits
from desktop.engine_worker.multimodal import Vision, snap
from desktop.engine_worker.recurrent_checkpoints import RecurrentCheckpoints, has_recurrent_state
from desktop.engine_worker.state_cache import StateCache, model_fingerprint, restore, snapshot
from desktop.engine_worker.swa_checkpoints import (
    SwaCheckpoints,
    full_size_cache,
    worth_checkpoints,
)

Emit = Callable[..., None]
# Streamed text is batched into at most ~20 events/s: smooth for the eye, and each event wakes
# the client process, which on a 2-core machine takes a core from the decode's threads (at
# ~50 events/s, i.e. one per token, generation measured ~2% slower than llama-server's).
FLUSH_S = 0.05
REPLY_MEMORY = 64  # generated replies whose token ids we remember, for prefix reuse
MIN_STATE_TOKENS = 256  # shorter histories are cheaper to re-read than to save and restore
# After a reply in a chat at least this long, its state is saved at once (issue 12: a kill or
# a crash later still finds it); shorter chats are saved on switch, idle and shutdown.
LONG_HISTORY_TOKENS = 1024
# The worker saves the active chat's state after this long without requests.
IDLE_SAVE_S = float(os.environ.get("HEARTH_IDLE_SAVE_S") or 20.0)
MIN_REUSE = 32  # a shorter common prefix is not worth keeping (see prepare)
PART_MEMORY = 512  # tokenized prompt parts kept (a chat of 250 turns)


def physical_cores() -> int:
    try:
        import psutil

        return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except ImportError:
        return max(1, os.cpu_count() or 1)


def build_sampler(params: dict[str, Any], n_vocab: int, vocab: Any = None) -> ctypes.c_void_p:
    """llama.cpp's sampler chain in the usual order: penalties, grammar, top-k, top-p, min-p,
    temp, dist (the order llama-cpp-python uses)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    repeat = float(params.get("repeat_penalty", 1.0))
    if repeat != 1.0:
        add(chain, llama_cpp.llama_sampler_init_penalties(n_vocab, 64, repeat, 0.0, 0.0))
    if params.get("json_schema") is not None and vocab is not None:
        try:
            add(chain, json_schema_sampler(vocab, params["json_schema"]))
        except BaseException:
            llama_cpp.llama_sampler_free(chain)
            raise
    temperature = float(params.get("temperature", 0.8))
    if temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    top_k = int(params.get("top_k", 40))
    if top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
    add(chain, llama_cpp.llama_sampler_init_top_p(float(params.get("top_p", 0.95)), 1))
    add(chain, llama_cpp.llama_sampler_init_min_p(float(params.get("min_p", 0.05)), 1))
    add(chain, llama_cpp.llama_sampler_init_temp(temperature))
    seed = params.get("seed")
    add(chain, llama_cpp.llama_sampler_init_dist(
        int(seed) & 0xFFFFFFFF if seed is not None else llama_cpp.LLAMA_DEFAULT_SEED))
    return chain


def plain_greedy(params: dict[str, Any]) -> bool:
    """Whether build_sampler makes a chain of greedy alone (no penalties, no grammar): then the
    decode loop may take the argmax itself (decode_loop.TokenStream, greedy=True)."""
    return (float(params.get("temperature", 0.8)) <= 0
            and float(params.get("repeat_penalty", 1.0)) == 1.0
            and params.get("json_schema") is None)


def json_schema_sampler(vocab: Any, schema: Any) -> ctypes.c_void_p:
    """A grammar sampler that lets the model write only JSON matching `schema` (a dict)."""
    import json

    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
        raise EngineError(f"This JSON schema cannot be turned into a grammar: {exc}") from exc
    sampler = llama_cpp.llama_sampler_init_grammar(
        vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
    if not sampler:
        raise EngineError("llama.cpp could not parse the grammar built from this JSON schema.")
    return sampler


def amx_kernels_compiled() -> bool:
    """True when this llama.cpp build carries ggml's AMX matmul kernels.

    On this project's Xeon VMs those kernels segfault in ggml_backend_amx_mul_mat (gdb trace in
    the README's troubleshooting). They run only through the "extra buffer types" (weight
    repacking), so such builds load models with use_extra_bufts=False.
    """
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "AMX_INT8 = 1" in info


@contextmanager
def default_params_override(factory: str, **fields: Any) -> Iterator[None]:
    """Set fields of the params struct that llama_cpp.Llama() gets from llama.cpp's `factory`
    (llama_model_default_params, llama_context_default_params) but does not expose as
    arguments."""
    original = getattr(llama_lib, factory)

    def patched() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    setattr(llama_lib, factory, patched)
    try:
        yield
    finally:
        setattr(llama_lib, factory, original)


class _UnusedChatFormatter:
    """Stands in for llama_cpp's Jinja2ChatFormatter while a model loads.

    llama_cpp.Llama() compiles every chat template in the file's metadata with its own Jinja
    environment, so a template with a syntax error failed the load (and a hostile one ran
    outside Hearth's bounded sandbox). Hearth renders templates itself (core/chat/templates.py,
    DESIGN 4) and never uses the binding's chat handlers, so the binding must not parse them."""

    def __init__(self, **_: Any) -> None:
        pass

    def to_chat_handler(self) -> Callable[..., Any]:
        def refuse(**_: Any) -> Any:
            raise EngineError("Hearth renders chat templates itself.")
        return refuse


@contextmanager
def binding_templates_off() -> Iterator[None]:
    formats = llama_cpp.llama_chat_format
    original = formats.Jinja2ChatFormatter
    formats.Jinja2ChatFormatter = _UnusedChatFormatter  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        formats.Jinja2ChatFormatter = original  # type: ignore[misc]


def open_model(path: str, on_progress: Callable[[float], None] | None = None,
               flash: str = "auto", **kwargs: Any) -> llama_cpp.Llama:
    """llama_cpp.Llama with Hearth's safe defaults (used by the worker and the bench reference).
    `on_progress` hears llama.cpp's load progress (0 to 1), so a window can show it; `flash`
    is the flash attention mode (decode_loop.flash_attention)."""
    overrides: dict[str, Any] = {"use_extra_bufts": False} if amx_kernels_compiled() else {}
    if on_progress is not None:
        def progress(value: float, _user: Any) -> bool:
            on_progress(float(value))
            return True  # False would abort the load

        # Kept referenced by `overrides` until the load returns (ctypes must not free it).
        overrides["progress_callback"] = llama_cpp.llama_progress_callback(progress)
    # A drafted batch asks for a token at each of its positions; with the sampler in the graph
    # (backend_sampling.py) llama.cpp allows only this many outputs per sequence (default 1).
    outputs = {} if kwargs.get("embedding") else {"n_outputs_max_per_seq": MAX_DRAFT + 1}
    if kwargs.get("verbose"):
        llama_cpp.llama_log_set(_llama_log, ctypes.c_void_p(0))
    with default_params_override("llama_model_default_params", **overrides), \
            default_params_override("llama_context_default_params", **outputs), \
            binding_templates_off(), flash_attention(flash):
        return llama_cpp.Llama(model_path=path, **kwargs)


_log_shown = [True]  # whether the last message was written (a CONT line follows its fate)


@llama_cpp.llama_log_callback  # type: ignore[misc]
def _llama_log(level: int, text: bytes, _user: Any) -> None:
    """The worker's log of llama.cpp: information, warnings and errors, never DEBUG.

    llama-cpp-python's own callback maps ggml's levels by an older numbering (DEBUG was 4), so
    with verbose=True it lets DEBUG through: thousands of lines each time llama.cpp plans a
    graph, and one per token once the sampler runs in the graph. ggml.h today: NONE 0,
    DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous message)."""
    if level != 5:
        _log_shown[0] = level >= 2
    if _log_shown[0]:
        print(text.decode("utf-8", "replace"), end="", flush=True, file=sys.stderr)


class Decoder:
    """Raw decode of a token list into the context, in n_batch slices, logits for the last."""

    def __init__(self, ctx: Any, n_batch: int) -> None:
        self.ctx = ctx
        self.n_batch = n_batch

    def decode(self, tokens: list[int],
               on_batch: Callable[[int, int], None] | None = None) -> None:
        for start in range(0, len(tokens), self.n_batch):
            if on_batch is not None:
                on_batch(start, len(tokens))  # tokens read so far, of all: prompt progress
            chunk = tokens[start:start + self.n_batch]
            array = (llama_cpp.llama_token * len(chunk))(*chunk)
            rc = llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(array, len(chunk)))
            if rc != 0:
                raise EngineError(f"llama.cpp could not process the prompt (llama_decode={rc}); "
                                  "the context may be full.")


class Runner:
    def __init__(self) -> None:
        self.llm: llama_cpp.Llama | None = None
        self.embedder: Embedder | None = None
        self.vision: Vision | None = None  # the projector of a vision model (multimodal.py)
        self.draft: DraftModel | None = None  # drafts for self.llm (draft_model.py), optional
        self.cache_tokens: list[int] = []  # exactly what the KV cache holds, position by position
        self.replies: OrderedDict[str, list[int]] = OrderedDict()
        # Earlier turns are re-sent every turn: tokenize each part once, not once per turn.
        self.part_tokens: OrderedDict[tuple[str, bool, bool], list[int]] = OrderedDict()
        self._cancel = Event()
        self._cancel_lock = Lock()
        self._cancel_early: list[int] = []  # ids cancelled before their generate started
        self._current: int | None = None
        self.session: str | None = None  # the conversation whose tokens the KV cache holds
        self.states: StateCache | None = None
        self._saved: tuple[str, int, int] | None = None  # what save_state() last wrote
        self.sampler = AttachedSampler()  # sampling inside the graph (backend_sampling.py)
        self.output_on_gpu = False  # the loaded model's output layer is offloaded to a GPU
        # Reads long prompts with flash attention where Automatic turned it off (flash_prefill.py).
        self.flash_prefill: FlashPrefill | None = None
        self.prefill_side = False  # the last prompt was read that way (the reply's stats)
        # A sliding-window model's small SWA cache, cut back behind its window
        # (swa_checkpoints.py), or a recurrent state, cut back at all (recurrent_checkpoints.py).
        self.checkpoints: SwaCheckpoints | None = None

    # --- dispatch ----------------------------------------------------------------------
    def handle(self, message: dict[str, Any], emit: Emit) -> None:
        op = message.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise EngineError(f"Unknown request {op!r}.")
        handler(message, emit)

    def cancel(self, target: int) -> None:
        # A cancel can overtake its generate: the reader thread sees it while the generate
        # still waits in the request queue. Remember it, or the reply runs to its end.
        with self._cancel_lock:
            if self._current == target:
                self._cancel.set()
            else:
                self._cancel_early.append(target)
                del self._cancel_early[:-64]  # only the newest matter

    def cancel_current(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        # Quitting the app (or the CLI finishing) keeps the active chat's state, so coming
        # back to it after a restart reads only the new message.
        self.save_state()
        self._drop_vision()
        self.draft = None
        self.llm = self.embedder = None

    def save_state(self) -> bool:
        """Save the active chat's KV state (RAM and disk) unless that exact state is saved."""
        if self.llm is None or self.states is None or self.session is None \
                or len(self.cache_tokens) < MIN_STATE_TOKENS:
            return False
        mark = (self.session, len(self.cache_tokens), self.cache_tokens[-1])
        if mark == self._saved:
            return False
        self.states.put(self.session, self.cache_tokens, snapshot(self.llm.ctx))
        self._saved = mark
        return True

    # --- load ------------------------------------------------------------------------
    def op_load(self, msg: dict[str, Any], emit: Emit) -> None:
        path = Path(msg["path"])
        info = read_gguf(path)  # refuse bad files before llama.cpp can crash on them
        embedding = bool(msg.get("embedding"))
        n_ctx = int(msg.get("n_ctx") or 4096)
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        # Embedding: n_ctx bounds a passage; decodes pack passages up to PACK_TOKENS (embedder.py).
        n_batch = PACK_TOKENS if embedding else int(msg.get("n_batch") or 512)
        threads = int(msg.get("n_threads") or physical_cores())
        threads_batch = int(msg.get("n_threads_batch") or os.cpu_count() or threads)
        flash = str(msg.get("flash_attn") or "auto")
        # What "auto" means here: off for narrow heads where the KV cache is on the CPU.
        layers = int(msg.get("n_gpu_layers") or 0)
        kv_on_cpu = layers == 0 or not llama_cpp.llama_supports_gpu_offload()
        used_flash = flash if embedding else effective_flash(flash, info.head_size, kv_on_cpu)
        # Where that choice depends on the CPU, a verdict measured on this machine beats the
        # fixed rule; without one yet, the model loads by the rule and is measured (below).
        choosing = not embedding and narrow_on_cpu(flash, info.head_size, kv_on_cpu)
        verdicts = Verdicts(msg.get("tuning_file"))
        key = verdict_key(model_fingerprint(path), threads, threads_batch) if choosing else ""
        known = verdicts.get(key) if choosing else None
        used_flash = known or used_flash
        flash_choice: dict[str, Any] = {"source": "saved"} if known else {}
        started = time.perf_counter()
        if embedding:
            self.embedder = None
        else:
            self._drop_vision()
            self.sampler.release()  # before its context goes
            self.draft = None  # freed before the new model loads, like the old target
            self.flash_prefill = None
            self.checkpoints = None
            self.llm = None
            self.cache_tokens = []
            self.replies.clear()
            self.part_tokens.clear()
        shown = [-1]

        def loading(value: float) -> None:
            percent = int(value * 100)
            if percent > shown[0]:  # llama.cpp calls this per tensor: one event per percent
                shown[0] = percent
                emit("progress", stage="load", done=percent, total=100)

        def opening(flash_used: str) -> llama_cpp.Llama:
            return open_model(
                str(path),
                on_progress=loading,
                flash=flash_used,
                n_ctx=max(n_ctx, n_batch) if embedding else n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=threads,
                n_threads_batch=threads_batch,
                n_gpu_layers=layers,
                embedding=embedding,
                logits_all=False,
                # Sliding-window models keep llama.cpp's small SWA cache, as llama-server does:
                # the full-size one makes every SWA layer scan the whole history. Prefix reuse
                # behind the window uses checkpoints instead (swa_checkpoints.py).
                swa_full=full_size_cache(info.architecture),
                verbose=True,
            )

        try:
            llm = opening(used_flash)
            if choosing and not known:
                timings = measure(llm.model, threads, threads_batch)
                if timings is not None:
                    chosen = verdict(timings)
                    flash_choice = {"source": "measured", "timings": timings}
                    if chosen != used_flash:
                        llm.close()  # the weights stay in the page cache: a quick reopen
                        try:
                            llm = opening(chosen)
                        except (ValueError, RuntimeError, OSError):
                            # Kept as the verdict, a kernel that cannot load would fail
                            # every later load: the rule's choice is kept instead.
                            chosen = used_flash
                            llm = opening(used_flash)
                        used_flash = chosen
                    verdicts.put(key, chosen, timings)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"llama.cpp could not load {path.name}: {exc}",
                                 details=str(path)) from exc
        if embedding:
            self.embedder = Embedder(llm, n_ctx)
        else:
            warm_up(llm.ctx, llm.model)
            # llama.cpp counts the output layer as one more than the blocks; -1 means all.
            self.output_on_gpu = bool(llama_cpp.llama_supports_gpu_offload()) and (
                layers < 0 or layers > llama_cpp.llama_model_n_layer(llm.model))
            if msg.get("mmproj"):
                self.vision = Vision(llm, str(msg["mmproj"]), n_threads=threads,
                                     use_gpu=bool(layers))
            self.llm = llm
            self.flash_prefill = FlashPrefill(llm.model, n_batch, threads, threads_batch) \
                if side_flash(flash, used_flash) and suits(llm.model) else None
            n_swa = worth_checkpoints(llm.model, info.architecture)
            self.checkpoints = SwaCheckpoints(llm.ctx, n_swa) if n_swa else (
                RecurrentCheckpoints(llm.ctx) if has_recurrent_state(llm.model) else None)
            self.session = None
            state_dir = msg.get("state_dir")
            self.states = StateCache(
                model_fingerprint(path),
                llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model)),
                int(msg.get("state_ram_mb") or 1024) * 1024 * 1024,
                Path(state_dir) if state_dir else None,
                disk_budget_bytes=int(msg.get("state_disk_mb") or 2048) * 1024 * 1024)
        draft_note = None
        if not embedding and msg.get("draft_path"):
            # A draft model for speculative decoding, with the target's context, threads and
            # GPU layers. One that cannot be used is a note in the result, never a failed load.
            self.draft, draft_note = load_draft(
                str(msg["draft_path"]), info, open_model, flash=used_flash, n_ctx=llm.n_ctx(),
                n_batch=llm.n_batch, n_ubatch=llm.n_batch, n_threads=threads,
                n_threads_batch=threads_batch,
                n_gpu_layers=layers)
            if draft_note:
                print(f"[worker] {draft_note}", flush=True)  # into the engine log
        emit("loaded", info={
            **info.summary(),
            "n_ctx": llm.n_ctx(),
            "n_threads": threads,
            "flash_attn": flash,  # as asked (the model's setting)
            "flash_attn_used": used_flash,  # what "auto" became for this model and device
            **({"flash_choice": flash_choice} if flash_choice else {}),
            "n_gpu_layers": layers,
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
            "load_s": time.perf_counter() - started,
            "embedding": embedding,
            "vision": self.vision is not None and not embedding,
            **({} if embedding else {
                "draft_model": self.draft.name if self.draft else None,
                "draft_path": str(msg["draft_path"]) if self.draft else None,
                "draft_note": draft_note}),
        })

    def op_unload(self, msg: dict[str, Any], emit: Emit) -> None:
        self._drop_vision()
        self.sampler.release()
        self.draft = None
        self.flash_prefill = None
        self.checkpoints = None
        self.llm = None
        self.embedder = None
        self.states = None
        self.session = None
        self.cache_tokens = []
        emit("ok")

    def _drop_vision(self) -> None:
        if self.vision is not None:
            self.vision.close()
            self.vision = None

    def _vision(self) -> Vision:
        if self.vision is None:
            raise EngineError("This model cannot see images: load it with its vision projector "
                              "(mmproj file).")
        return self.vision

    def _model(self) -> llama_cpp.Llama:
        if self.llm is None:
            raise EngineError("No model is loaded. Choose a model first.")
        return self.llm

    # --- tokens ----------------------------------------------------------------------
    def tokenize_parts(self, parts: list[dict[str, Any]]) -> list[int]:
        llm = self._model()
        tokens: list[int] = []
        for part in parts:
            if part.get("image"):
                tokens.extend(self._vision().tokens(str(part["image"])))
                continue
            text = part.get("text", "")
            if not text:
                continue
            if part.get("generated") and text in self.replies:
                tokens.extend(self.replies[text])
                continue
            key = (text, bool(part.get("special")), not tokens)
            cached = self.part_tokens.get(key)
            if cached is None:
                cached = llm.tokenize(text.encode("utf-8"), add_bos=key[2], special=key[1])
                self.part_tokens[key] = cached
                if len(self.part_tokens) > PART_MEMORY:
                    self.part_tokens.popitem(last=False)
            else:
                self.part_tokens.move_to_end(key)
            tokens.extend(cached)
        bos = llm.token_bos()
        # A template that writes {{ bos_token }} plus llama.cpp's own BOS would double it.
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens.pop(0)
        return tokens

    def op_count(self, msg: dict[str, Any], emit: Emit) -> None:
        llm = self._model()
        counts = [len(llm.tokenize(t.encode("utf-8"), add_bos=False, special=False))
                  for t in msg.get("texts", [])]
        images = [len(self._vision().tokens(str(p))) for p in msg.get("images") or []]
        emit("counted", counts=counts, **({"images": images} if images else {}))

    def _remember_reply(self, text: str, tokens: list[int]) -> None:
        if text:
            self.replies[text] = tokens
            self.replies.move_to_end(text)
            while len(self.replies) > REPLY_MEMORY:
                self.replies.popitem(last=False)

    # --- generate ----------------------------------------------------------------------
    def prepare(self, prompt: list[int],
                on_batch: Callable[[int, int], None] | None = None) -> int:
        """Bring the KV cache to `prompt`, reusing the common prefix; returns cached count."""
        llm = self._model()
        ctx = llm.ctx
        common = 0
        limit = min(len(prompt), len(self.cache_tokens))
        while common < limit and prompt[common] == self.cache_tokens[common]:
            common += 1
        if common == len(prompt):
            common -= 1  # the last prompt token must be decoded again to get its logits
        common = snap(prompt, common)  # an image is evaluated whole or not at all
        if common < MIN_REUSE:
            # Only the template header matches: start clean. Measured here, decoding a long
            # prompt from position 0 runs ~5% faster than continuing after a few cached tokens.
            common = 0
        checkpoints = self.checkpoints
        if checkpoints is not None:
            # Behind a sliding window, or in a recurrent state, the cache keeps only what a
            # checkpoint restores.
            common = checkpoints.cut(prompt, common)
        mem = llama_cpp.llama_get_memory(ctx)
        if common == 0:
            llama_cpp.llama_memory_clear(mem, True)
        # Sequence 0, the worker's one sequence, not -1 (all): a recurrent or hybrid model's
        # cache refuses -1 outright, which made every follow-up re-read the whole chat.
        elif not llama_cpp.llama_memory_seq_rm(mem, 0, common, -1):
            llama_cpp.llama_memory_clear(mem, True)
            common = 0
        self.cache_tokens = self.cache_tokens[:common]
        self.prefill_side = False
        new = len(prompt) - common
        if checkpoints is not None:
            checkpoints.prune(self.cache_tokens)
            if new > 1:
                checkpoints.take(self.cache_tokens)  # where the new part starts
        if self.flash_prefill is not None and self.flash_prefill.worth(common, new) \
                and all(t >= 0 for t in prompt[common:]):  # images go through Vision below

            def decode(target: Any, tokens: list[int], before: int) -> None:
                Decoder(target, llm.n_batch).decode(tokens, None if on_batch is None else (
                    lambda done, _total: on_batch(before + done, new)))

            held = self.flash_prefill.read(ctx, prompt, common, decode)
            if held == len(prompt):
                self.cache_tokens = list(prompt)
                self.prefill_side = True
                return common
            common = min(common, held)  # nothing moved, or a refused state left nothing
            self.cache_tokens = self.cache_tokens[:common]
        decoder = Decoder(ctx, llm.n_batch)
        if self.vision is not None and any(t < 0 for t in prompt[common:]):
            self.vision.decode(prompt[common:], common, lambda part: decoder.decode(part))
        else:
            # A recurrent state is checkpointed before the prompt's last token too: that is
            # where regenerating cuts (recurrent_checkpoints.py).
            split = len(prompt) - 1 if checkpoints is not None and checkpoints.before_last \
                and new > 1 and len(prompt) - 1 >= checkpoints.min_tokens else len(prompt)
            decoder.decode(prompt[common:split], on_batch)
            if split < len(prompt):
                assert checkpoints is not None
                checkpoints.take(prompt[:split])
                decoder.decode(prompt[split:])
        self.cache_tokens.extend(prompt[common:])
        if checkpoints is not None:
            checkpoints.take(self.cache_tokens)  # where the reply starts
        return common

    def switch_session(self, session: str | None) -> bool:
        """Save the KV state of the chat we leave, restore the one we return to."""
        if session == self.session or self.states is None:
            return False
        llm = self._model()
        self.save_state()
        self.session = session
        saved = self.states.get(session) if session is not None else None
        if saved is None:
            return False
        if restore(llm.ctx, saved.blob):
            self.cache_tokens = list(saved.tokens)
            return True
        if session is not None:
            self.states.drop(session)  # llama.cpp refused it: never try this state again
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        self.cache_tokens = []
        return False

    def op_generate(self, msg: dict[str, Any], emit: Emit) -> None:
        llm = self._model()
        request_id = int(msg["id"])
        params = dict(msg.get("params") or {})
        with self._cancel_lock:
            self._current = request_id
            self._cancel.clear()
            if request_id in self._cancel_early:
                self._cancel_early.remove(request_id)
                self._cancel.set()  # cancelled before it started: stops at its first token
        try:
            self._generate(llm, msg.get("parts") or [], params, emit)
        finally:
            self._current = None

    def _generate(self, llm: llama_cpp.Llama, parts: list[dict[str, Any]],
                  params: dict[str, Any], emit: Emit) -> None:
        started = time.perf_counter()
        restored = self.switch_session(params.get("session"))
        prompt = self.tokenize_parts(parts)
        if not prompt:
            # llama.cpp asserts (and the worker aborts) on an empty batch.
            raise EngineError("The prompt is empty: the chat template produced no text.")
        n_ctx = llm.n_ctx()
        if len(prompt) >= n_ctx:
            # Older turns were already dropped to make room: the newest message alone is too long.
            raise EngineError(f"This message needs {len(prompt)} tokens but the model's context "
                              f"holds {n_ctx}. Shorten it, or give the model a longer context "
                              "(Models → Installed → Defaults for this model, or --ctx).")
        max_tokens = int(params.get("max_tokens") or 0) or n_ctx
        max_tokens = min(max_tokens, n_ctx - len(prompt))
        # A long prompt takes seconds to read: say how far it is (one event per batch, only
        # for prompts of more than one batch).
        def reading(done: int, total: int) -> None:
            if total > llm.n_batch:
                emit("progress", stage="prompt", done=done, total=total)

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        # Attached before the prompt is read, so its last token is sampled in the graph too.
        sampler, owned = self.sampler.acquire(
            llm.ctx, params, lambda: build_sampler(params, n_vocab, vocab),
            offloadable(params, self.vision is not None, self.output_on_gpu))
        try:
            cached = self.prepare(prompt, reading)
        except BaseException:
            if owned:
                llama_cpp.llama_sampler_free(sampler)
            raise
        prefill_done = time.perf_counter()
        stops = [s for s in params.get("stop", []) if s]
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buf = ctypes.create_string_buffer(256)
        generated: list[int] = []
        text = ""  # everything decoded so far
        sent = 0  # characters of `text` already emitted
        last_flush = 0.0
        first_token_at: float | None = None
        stop_reason = "length"
        cut_at_stop = False
        stamps: list[float] = []  # per-token times: shows whether per-token cost stays flat
        ignore_eos = bool(params.get("ignore_eos"))  # benchmarks: always generate max_tokens
        # Drafting (speculative decoding) is on unless the model's settings turn it off;
        # document answers start with long drafts (decode_loop.py).
        stream = TokenStream(llm.ctx, vocab, sampler, self.cache_tokens,
                             speculate=bool(params.get("speculative", True)),
                             eager=bool(params.get("documents")),
                             # The loaded draft model drafts too, unless this request says not.
                             drafter=self.draft if params.get("use_draft", True) else None,
                             # A chain attached to the graph (not owned) samples there instead.
                             greedy=owned and plain_greedy(params))
        # Reasoning models: thinking and answer are split here, so every client gets them apart.
        split = _Split(params.get("reasoning_format"), parts)
        try:
            while len(generated) < max_tokens:
                if self._cancel.is_set():
                    stop_reason = "cancelled"
                    break
                token = stream.next()
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if not ignore_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
                    stop_reason = "stop"
                    break
                generated.append(token)
                stamps.append(time.perf_counter())
                # With a reasoning format, control tokens (<|channel|>, <channel|>) are rendered
                # too: they are the markers the parser needs to see.
                n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0,
                                                   split.parser is not None)
                text += utf8.decode(buf.raw[:max(n, 0)])
                cut = _find_stop(text, stops, sent)
                if cut is not None:
                    text = text[:cut]
                    stop_reason, cut_at_stop = "stop", True
                    break
                now = time.perf_counter()
                # Hold back only a tail that could still grow into a stop string.
                safe = len(text) - _partial_stop(text, stops)
                if split.parser is not None:
                    if safe > split.fed:
                        split.feed(text[split.fed:safe], now)
                        split.fed = safe
                    if split.ready() and (now - last_flush >= FLUSH_S or sent == 0):
                        emit("tokens", **split.take())
                        sent, last_flush = safe, now
                elif safe > sent and (now - last_flush >= FLUSH_S or sent == 0):
                    emit("tokens", text=text[sent:safe])
                    sent, last_flush = safe, now
                if len(generated) == max_tokens:
                    break  # no logits needed after the last token: skip its decode
                stream.advance(token, max_tokens - len(generated))  # also records cache_tokens
        finally:
            if owned:
                llama_cpp.llama_sampler_free(sampler)
        text += utf8.decode(b"", final=True)
        if split.parser is not None:
            split.feed(text[split.fed:], time.perf_counter(), final=True)
            if split.ready():
                emit("tokens", **split.take())
        elif len(text) > sent:
            emit("tokens", text=text[sent:])
        if not cut_at_stop and split.answer_is(text):
            # Token ids of a reply cut at a stop string no longer match its text: not reusable.
            self._remember_reply(text, generated)
        finished = time.perf_counter()
        # From the first token to the last one sampled, as llama-server times its replies
        # (server-common.h: n_gen_tps): what follows the loop is not generation.
        gen_s = (stamps[-1] if stamps else finished) - (first_token_at or finished)
        if len(self.cache_tokens) >= LONG_HISTORY_TOKENS:
            self.save_state()  # before `done`: once a client sees it, the state is on disk
        emit("done",
             stop_reason=stop_reason,
             prompt_tokens=len(prompt),
             cached_tokens=cached,
             completion_tokens=len(generated),
             ttft_s=(first_token_at or finished) - started,
             prefill_s=prefill_done - started,
             prefill_tokens_per_s=(len(prompt) - cached) / max(prefill_done - started, 1e-9),
             tokens_per_s=(len(generated) - 1) / gen_s if len(generated) > 1 and gen_s > 0 else 0.0,
             text_length=len(text),
             state_restored=restored,
             prefill_side_flash=self.prefill_side,
             **split.stats(),
             **stream.stats(),
             **quarter_rates(stamps),
             # The reply's and the prompt's token ids, on request (tests compare replies token
             # by token, and recompute logits over the very prompt the worker read).
             **({"tokens": generated, "prompt_ids": prompt} if params.get("return_tokens")
                else {}),
             n_ctx=llm.n_ctx())

    # --- embed -------------------------------------------------------------------------
    def op_embed(self, msg: dict[str, Any], emit: Emit) -> None:
        if self.embedder is None:
            raise EngineError("No embedding model is loaded.")
        texts = list(msg.get("texts") or [])
        # A passage too long for the model is an error, never silently cut (DESIGN 8).
        vectors = self.embedder.embed(texts)
        emit("embedded", vectors=vectors)


class _Split:
    """The reasoning parser at the worker's token loop: fed each token's new text once (no
    re-scan of the reply), pieces batched for the next `tokens` event, thinking counted."""

    def __init__(self, fmt: str | None, parts: list[dict[str, Any]]) -> None:
        self.parser: ReasoningParser | None = None
        if fmt:
            last = parts[-1] if parts else {}
            # A prompt ending in reply text (continuing a reply) is inside the answer already.
            continuing = bool(last) and not last.get("special")
            tail = "" if continuing else str(last.get("text", ""))[-256:]
            self.parser = ReasoningParser(str(fmt), tail, continuing)
        self.fed = 0  # characters of the reply given to the parser
        self.reasoning: list[str] = []
        self.text: list[str] = []
        self.answer_length = 0
        self.tokens = 0  # tokens spent thinking
        self.started: float | None = None
        self.ended: float | None = None

    def feed(self, piece: str, now: float, final: bool = False) -> None:
        assert self.parser is not None
        was = self.parser.in_reasoning
        reasoning, text = self.parser.feed(piece)
        if final:
            more_reasoning, more_text = self.parser.finish()
            reasoning, text = reasoning + more_reasoning, text + more_text
        elif was or self.parser.in_reasoning:
            # A token that opens, continues or closes the thinking.
            self.tokens += 1
            self.started = self.started or now
            self.ended = now
        if reasoning:
            self.reasoning.append(reasoning)
        if text:
            self.text.append(text)
            self.answer_length += len(text)

    def ready(self) -> bool:
        return bool(self.reasoning or self.text)

    def take(self) -> dict[str, str]:
        event = {"text": "".join(self.text), "reasoning": "".join(self.reasoning)}
        self.reasoning.clear()
        self.text.clear()
        return event

    def answer_is(self, raw: str) -> bool:
        """Whether the answer the client stores is the raw reply text (so the generated token
        ids can stand for it in the next prompt)."""
        if self.parser is None:
            return True
        return not self.parser.saw_markers and self.answer_length == len(raw)

    def stats(self) -> dict[str, Any]:
        if self.parser is None:
            return {}
        seconds = (self.ended - self.started) if self.started and self.ended else None
        return {"reasoning_format": self.parser.fmt, "reasoning_tokens": self.tokens,
                "reasoning_s": seconds}


def quarter_rates(stamps: list[float]) -> dict[str, float]:
    """Tokens/s over the first and the last quarter of a long reply (empty if short)."""
    n = len(stamps)
    if n < 64:
        return {}
    q = n // 4
    head = (q - 1) / max(stamps[q - 1] - stamps[0], 1e-9)
    tail = (q - 1) / max(stamps[-1] - stamps[-q], 1e-9)
    return {"tokens_per_s_head": head, "tokens_per_s_tail": tail}


def _partial_stop(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def _find_stop(text: str, stops: list[str], sent: int) -> int | None:
    """Index where the earliest stop string starts, searching only text not yet emitted."""
    best: int | None = None
    for stop in stops:
        index = text.find(stop, max(0, sent - len(stop)))
        if index != -1 and (best is None or index < best):
            best = index
    return best
