"""Long prompts read in a flash-attention side context and moved into the model's own context
(engine_worker/flash_prefill.py), on the real SmolLM2 (64-wide heads: where Automatic turns
flash attention off for it on a CPU) in this process and through the real worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.bench import chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.engine_worker.flash_choice import Verdicts, verdict_key
from desktop.engine_worker.flash_prefill import (
    MIN_NEW_TOKENS,
    FlashPrefill,
    _set_state,
    _state,
    relayout_v,
    side_flash,
    suits,
)
from desktop.engine_worker.runner import physical_cores
from desktop.engine_worker.state_cache import model_fingerprint
from tests.doc_corpus import PDF_PAGES
from tests.engine.logits import cosine, last_logits


@pytest.fixture(scope="module")
def smol(smollm_path: Path):
    from desktop.engine_worker.runner import open_model, warm_up

    llm = open_model(str(smollm_path), flash="off", n_ctx=2048, n_batch=512, n_ubatch=512,
                     n_threads=2, logits_all=False)
    warm_up(llm.ctx, llm.model)
    return llm


def _tokens(llm, n: int) -> list[int]:
    text = "\n\n".join(PDF_PAGES * 8)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    assert len(tokens) >= n
    return tokens[:n]


def _decode(ctx, tokens: list[int]) -> None:
    from desktop.engine_worker.runner import Decoder

    Decoder(ctx, 512).decode(tokens)


def test_a_state_changes_layout_and_back_exactly_and_llama_cpp_takes_only_its_own(smol) -> None:
    import llama_cpp

    assert suits(smol.model)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(smol.ctx), True)
    _decode(smol.ctx, _tokens(smol, 40))
    state = _state(smol.ctx)  # flash attention off: V transposed
    original = bytes(state)
    side = FlashPrefill(smol.model, 512, 2, 2)._side_context(256)
    try:
        assert not _set_state(side, state)  # llama.cpp checks the layout...
        assert not relayout_v(state, to_transposed=True)  # ...and so does relayout_v
        assert relayout_v(state, to_transposed=False)
        assert bytes(state) != original and len(bytes(state)) == len(original)
        assert _set_state(side, state)  # ...which it then takes
        moved = _state(side)
        assert bytes(moved) == bytes(state)
        assert relayout_v(moved, to_transposed=True)
        assert bytes(moved) == original
    finally:
        llama_cpp.llama_free(side)


def test_what_is_not_a_plain_kv_state_is_refused() -> None:
    assert not relayout_v(bytearray(b"\x00" * 64), to_transposed=True)  # no magic
    header = (0xAF143CD8).to_bytes(4, "little") + bytes(4)
    assert not relayout_v(bytearray(header + (2).to_bytes(4, "little")), True)  # two streams
    # One cell, then the state ends where its layers should be.
    cut = header + (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(12)
    assert not relayout_v(bytearray(cut), True)


def test_a_moved_cache_computes_what_the_flash_context_computes(smol) -> None:
    """The V blocks land where the other layout expects them: the model's next-token logits
    over a moved cache match the flash context's own to the last digits that flash attention's
    f16 arithmetic leaves (a cache with V in the wrong order scores far lower: the test fails
    with the transposition left out of _relayout_block)."""
    import llama_cpp

    prompt = _tokens(smol, 700)
    side = FlashPrefill(smol.model, 512, 2, 2)._side_context(len(prompt))
    try:
        _decode(side, prompt)
        reference = last_logits(smol, side)  # flash attention all the way
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(side), True)
        _decode(side, prompt[:-1])
        state = _state(side)
    finally:
        llama_cpp.llama_free(side)
    assert relayout_v(state, to_transposed=True)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(smol.ctx), True)
    assert _set_state(smol.ctx, state)
    _decode(smol.ctx, prompt[-1:])  # the last token without flash attention, over the moved cache
    moved = last_logits(smol, smol.ctx)
    assert int(moved.argmax()) == int(reference.argmax())
    assert cosine(moved, reference) > 0.9999


def test_only_automatic_off_reads_in_a_side_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEARTH_FLASH_ATTN", raising=False)
    assert side_flash("auto", "off")
    assert not side_flash("off", "off")  # the user's Off stands
    assert not side_flash("auto", "auto") and not side_flash("on", "on")
    monkeypatch.setenv("HEARTH_FLASH_ATTN", "off")
    assert not side_flash("auto", "off")
    prefill = FlashPrefill(None, 512, 2, 2)
    assert prefill.worth(0, MIN_NEW_TOKENS + 1) and not prefill.worth(0, MIN_NEW_TOKENS)
    assert prefill.worth(600, 600) and not prefill.worth(2000, 600)


def test_the_worker_reads_a_long_prompt_in_the_side_context_and_reuses_it(
        tmp_path: Path, smollm_path: Path) -> None:
    fmt = chat_format(str(smollm_path))
    document = "\n\n".join(PDF_PAGES * 8)
    history = [{"role": "user", "content": document + "\n\nWhat is this text about?"}]
    # Automatic's verdict for this machine, as a measurement that found flash attention the
    # slower kernel for a turn would keep it (flash_choice.py): generate without it.
    tuning = tmp_path / "engine-tuning.json"
    threads = physical_cores()
    Verdicts(str(tuning)).put(verdict_key(model_fingerprint(smollm_path), threads, threads), "off")
    client = EngineClient(tmp_path / "engine.log")
    params = {"temperature": 0, "max_tokens": 12, "stop": fmt.stop, "session": "a"}
    try:
        info = client.load(LoadOptions(str(smollm_path), n_ctx=4096, n_threads=threads,
                                       n_threads_batch=threads, tuning_file=str(tuning)))["info"]
        assert info["flash_attn_used"] == "off"
        stream = client.generate(render_parts(fmt, history), params)
        first = stream.wait()
        assert first["prefill_side_flash"] and first["cached_tokens"] == 0, first
        assert first["prompt_tokens"] > MIN_NEW_TOKENS + 1
        history += [{"role": "assistant", "content": "".join(stream.text)},
                    {"role": "user", "content": "Say it shorter."}]
        follow = client.generate(render_parts(fmt, history), params).wait()
        # The short follow-up is read in the model's own context, after the moved cache.
        assert not follow["prefill_side_flash"]
        assert follow["cached_tokens"] >= first["prompt_tokens"]
        assert follow["completion_tokens"] > 0
        # Another chat: a short start read the plain way, then a long document pasted into it.
        # The cached start crosses to the side context and back (relayout_v both ways).
        chat = [{"role": "system", "content": "You are a careful assistant. " * 12},
                {"role": "user", "content": "Hi"}]
        stream = client.generate(render_parts(fmt, chat), {**params, "session": "b"})
        short = stream.wait()
        assert not short["prefill_side_flash"]
        chat += [{"role": "assistant", "content": "".join(stream.text)},
                 {"role": "user", "content": document + "\n\nSum this up."}]
        pasted = client.generate(render_parts(fmt, chat), {**params, "session": "b"}).wait()
        assert pasted["prefill_side_flash"]
        assert pasted["cached_tokens"] >= short["prompt_tokens"] > 32
        assert pasted["completion_tokens"] > 0
    finally:
        client.shutdown()
    log = (tmp_path / "engine.log").read_text(encoding="utf-8", errors="replace")
    assert "flash_attn            = enabled" in log  # the side context, created by llama.cpp


def test_a_model_loaded_with_flash_attention_off_reads_the_plain_way(
        tmp_path: Path, smollm_path: Path) -> None:
    fmt = chat_format(str(smollm_path))
    parts = render_parts(fmt, [{"role": "user", "content": "\n\n".join(PDF_PAGES * 8)}])
    client = EngineClient(tmp_path / "engine.log")
    try:
        client.load(LoadOptions(str(smollm_path), n_ctx=4096, flash_attn="off"))
        done = client.generate(parts, {"temperature": 0, "max_tokens": 4}).wait()
        assert not done["prefill_side_flash"] and done["prompt_tokens"] > MIN_NEW_TOKENS + 1
    finally:
        client.shutdown()


def test_a_side_context_is_made_only_where_memory_has_room_for_it(smol) -> None:
    import psutil

    prefill = FlashPrefill(smol.model, 512, 2, 2)
    assert prefill._room_for(4096)  # SmolLM2: ~23 KB a token in f16
    # A prompt whose cache would take three times the memory free now is read the plain way.
    assert not prefill._room_for(psutil.virtual_memory().available // 23_040 + 1)
