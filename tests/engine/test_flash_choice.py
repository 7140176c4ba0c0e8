"""Automatic flash attention for narrow heads on a CPU, measured once per model and machine
(engine_worker/flash_choice.py), with the real SmolLM2 (64-wide heads) and Gemma 3 (256-wide).

The speeds themselves belong to the bench; these check that the measurement runs over a cache
llama.cpp really holds, that its verdict is the one loaded and kept, and that a kept verdict is
used without measuring again."""

from __future__ import annotations

import ctypes
import json
import re
from pathlib import Path

import llama_cpp
import pytest

from desktop.bench import chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.engine_worker.flash_choice import (
    CLEAR,
    DEPTH,
    REPLY,
    Verdicts,
    _Probe,
    measure,
    turn_s,
    verdict,
    verdict_key,
    widen,
)
from desktop.engine_worker.runner import open_model, physical_cores
from desktop.engine_worker.state_cache import model_fingerprint

TYPES = {"on": "enabled", "off": "disabled"}


@pytest.fixture(scope="module")
def smol(smollm_path: Path):  # noqa: ANN201
    # Through the worker's own loader: it knows which builds must not repack weights.
    llm = open_model(str(smollm_path), flash="off", n_ctx=512, n_threads=2, logits_all=False)
    yield llm
    llm.close()


def _contexts(log: Path) -> list[str]:
    """The flash attention type of every context llama.cpp created, in order."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return re.findall(r"llama_context: flash_attn\s+=\s+(\w+)", text)


@pytest.mark.parametrize("flash", [True, False])
def test_a_widened_state_is_a_cache_llama_cpp_holds_and_decodes_after(smol, flash: bool) -> None:
    """Both layouts of V (rows with flash attention, transposed without) widen to DEPTH cells
    that llama.cpp accepts as positions 0..DEPTH-1, and a token decodes after them."""
    probe = _Probe(smol.model, flash, 2, 2)
    try:
        assert probe.fill()
        mem = llama_cpp.llama_get_memory(probe.ctx)
        assert llama_cpp.llama_memory_seq_pos_min(mem, 0) == 0
        assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == DEPTH - 1
        assert probe.token_s() > 0 and probe.batch_s() > 0
        assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == DEPTH - 1  # timing leaves it so
        # What llama.cpp saves of the widened cache is DEPTH copies of the one decoded cell.
        size = llama_cpp.llama_state_seq_get_size(probe.ctx, 0)
        saved = (ctypes.c_uint8 * size)()
        assert llama_cpp.llama_state_seq_get_data(probe.ctx, saved, size, 0) == size
        llama_cpp.llama_memory_clear(mem, True)
        probe._decode(1, 0)
        one_size = llama_cpp.llama_state_seq_get_size(probe.ctx, 0)
        one = (ctypes.c_uint8 * one_size)()
        assert llama_cpp.llama_state_seq_get_data(probe.ctx, one, one_size, 0) == one_size
        assert bytes(widen(one, DEPTH) or b"") == bytes(saved)
    finally:
        probe.close()


def test_widen_refuses_what_it_was_not_written_for(smol) -> None:
    probe = _Probe(smol.model, False, 2, 2)
    try:
        probe._decode(2, 0)  # two cells
        size = llama_cpp.llama_state_seq_get_size(probe.ctx, 0)
        two = bytearray(size)
        buffer = (ctypes.c_uint8 * size).from_buffer(two)
        assert llama_cpp.llama_state_seq_get_data(probe.ctx, buffer, size, 0) == size
    finally:
        probe.close()
    assert widen(two, 8) is None
    assert widen(b"", 8) is None
    assert widen(bytes(64), 8) is None  # no magic


def test_the_quicker_turn_wins() -> None:
    quick_tokens = {"token_s": 0.010, "batch_s": 0.5}
    quick_batch = {"token_s": 0.012, "batch_s": 0.1}
    # 0.5 + 128 * 0.010 = 1.78 s against 0.1 + 128 * 0.012 = 1.636 s
    assert turn_s(quick_tokens) == pytest.approx(0.5 + REPLY * 0.010)
    assert verdict({"on": quick_tokens, "off": quick_batch}) == "off"
    assert verdict({"on": quick_batch, "off": quick_tokens}) == "on"


def test_measuring_times_both_kernels(smol) -> None:
    timings = measure(smol.model, 2, 2)
    assert timings is not None
    for kind in ("on", "off"):
        assert timings[kind]["token_s"] > 0
    # The winner's follow-up is always timed; the loser's only where its replies alone did
    # not already lose by far.
    winner = verdict(timings)
    loser = "off" if winner == "on" else "on"
    assert timings[winner]["batch_s"] > 0
    if timings[loser]["batch_s"] == 0:
        assert REPLY * timings[loser]["token_s"] > CLEAR * turn_s(timings[winner])


def test_the_worker_measures_once_and_keeps_the_verdict(tmp_path: Path,
                                                        smollm_path: Path) -> None:
    tuning = tmp_path / "engine-tuning.json"
    options = LoadOptions(str(smollm_path), n_ctx=1024, n_threads=2, n_threads_batch=2,
                          tuning_file=str(tuning))
    fmt = chat_format(str(smollm_path))
    parts = render_parts(fmt, [{"role": "user", "content": "Name a colour."}])
    used = []
    for run in ("first", "second"):
        log = tmp_path / f"{run}.log"
        client = EngineClient(log)
        try:
            info = client.load(options)["info"]
            done = client.generate(parts, {"temperature": 0, "max_tokens": 4,
                                           "ignore_eos": True}).wait()
        finally:
            client.shutdown()
        assert done["completion_tokens"] == 4
        assert info["flash_attn"] == "auto" and info["flash_attn_used"] in TYPES
        used.append(info["flash_attn_used"])
        kept = json.loads(tuning.read_text(encoding="utf-8"))
        assert [entry["flash"] for entry in kept.values()] == [used[0]]
        contexts = _contexts(log)
        if run == "first":  # measured: the model's context, both probes, maybe a reopen
            assert info["flash_choice"]["source"] == "measured"
            timings = info["flash_choice"]["timings"]
            assert verdict(timings) == used[0]
            assert contexts[1:3] == ["enabled", "disabled"]
            assert len(contexts) == (3 if used[0] == "off" else 4)
        else:  # kept: loaded as decided, nothing measured
            assert info["flash_choice"] == {"source": "saved"}
            assert contexts == [TYPES[used[0]]]
        assert contexts[-1] == TYPES[info["flash_attn_used"]]
    assert used[0] == used[1]


@pytest.mark.parametrize("kept", ["on", "off"])
def test_a_kept_verdict_is_loaded_as_it_says(tmp_path: Path, smollm_path: Path,
                                             kept: str) -> None:
    """A verdict on file (here written through the same store) decides the load, whichever it
    says; the file is keyed by model, threads, CPU and llama.cpp build."""
    tuning = tmp_path / "engine-tuning.json"
    threads = physical_cores()
    key = verdict_key(model_fingerprint(smollm_path), threads, threads)
    Verdicts(str(tuning)).put(key, kept)
    log = tmp_path / "engine.log"
    client = EngineClient(log)
    try:
        info = client.load(LoadOptions(str(smollm_path), n_ctx=1024, n_threads=threads,
                                       n_threads_batch=threads, tuning_file=str(tuning)))["info"]
    finally:
        client.shutdown()
    assert info["flash_attn_used"] == kept and info["flash_choice"] == {"source": "saved"}
    assert _contexts(log) == [TYPES[kept]]


def test_wide_heads_and_the_users_choice_are_not_measured(tmp_path: Path, gemma_path: Path,
                                                          smollm_path: Path) -> None:
    tuning = tmp_path / "engine-tuning.json"
    for path, mode in ((gemma_path, "auto"), (smollm_path, "on"), (smollm_path, "off")):
        client = EngineClient(tmp_path / "engine.log")
        try:
            info = client.load(LoadOptions(str(path), n_ctx=1024, flash_attn=mode,
                                           tuning_file=str(tuning)))["info"]
        finally:
            client.shutdown()
        assert "flash_choice" not in info
    assert not tuning.exists()


def test_a_damaged_tuning_file_means_measuring_again(tmp_path: Path) -> None:
    tuning = tmp_path / "engine-tuning.json"
    tuning.write_text("{not json", encoding="utf-8")
    store = Verdicts(str(tuning))
    assert store.get("anything") is None
    store.put("k", "on", {"on": {"token_s": 0.01, "batch_s": 0.1}})
    assert Verdicts(str(tuning)).get("k") == "on"
    tuning.write_text(json.dumps({"k": {"flash": "sideways"}}), encoding="utf-8")
    assert Verdicts(str(tuning)).get("k") is None
