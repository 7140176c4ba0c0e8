"""Automatic flash attention for narrow heads on a CPU: measured once per model and machine.

Whether llama.cpp's CPU flash-attention kernel helps a model with heads 64 wide or narrower
depends on the CPU, not only on the model. On session 6's Xeon, SmolLM2 generated 2.3x faster
deep in a chat without it; on session 7's EPYC it generated ~5% faster with it, while still
answering a short follow-up later (README, Performance). A fixed rule is wrong on one of them.
So where Automatic has that choice (decode_loop.narrow_on_cpu), the worker times both kernels
on the loaded model, once, and keeps the verdict per model file, thread count, CPU and
llama.cpp build (its version and its system info: CPU features, GPU backend) in the load
message's `tuning_file` (without one, for the worker's lifetime). The verdict is for a whole
turn, so it can keep the kernel that generates a little slower where it reads a follow-up
far sooner. One measurement taken while the machine was busy stands until the model file,
the threads, the CPU or the build changes; deleting the file measures again.

What is timed is one turn deep in a chat: a follow-up of FOLLOW_UP tokens read in one batch
and REPLY tokens generated one at a time, after DEPTH tokens of history. A kernel whose
replies alone take far longer than the other's whole turn has its follow-up left untimed
(it counts as free, and still loses): for 64-wide heads that batch is the slow part. Filling a cache by
reading DEPTH tokens would cost seconds on a 1B model, so each context decodes one token and
its one-cell state is widened to DEPTH cells (`widen`): attention costs the same whatever the
cells hold. Anything that does not parse as the plain one-sequence cache this was written for
(flash_prefill.suits) gives no verdict, and the fixed rule (flash attention off) stands.
See docs/DESIGN.md, section 4.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import statistics
import struct
import time
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from desktop.engine_worker.flash_prefill import STATE_MAGIC, suits

DEPTH = 1024  # history the turn is timed after (the "deep in a chat" is ~1,900)
FOLLOW_UP = 32  # tokens of a short follow-up message, read in one batch
REPLY = 128  # tokens a reply generates
ROUNDS = 3  # each round times both kernels, the first of them alternating
CLEAR = 1.5  # a lead this large after a round is no measuring noise: stop there
TOKENS = 4  # single-token decodes per kernel per round
_VERDICTS: dict[str, dict[str, Any]] = {}  # this worker's, where no tuning file is given


def widen(state: Any, cells: int) -> bytearray | None:
    """A copy of llama.cpp sequence state `state` (one cell, at position 0, of a plain
    one-sequence KV cache) with that cell repeated at positions 0..cells-1; None where the
    state is anything else."""
    data = memoryview(state).cast("B")
    try:
        magic, seq = struct.unpack_from("<Ii", data, 0)
        n_stream, count = struct.unpack_from("<II", data, 8)
        pos, n_seq, seq_id = struct.unpack_from("<iIi", data, 16)
        if (magic, seq, n_stream, count, pos, n_seq, seq_id) != (STATE_MAGIC, 0, 1, 1, 0, 1, 0):
            return None
        out = bytearray(data[:16])
        struct.pack_into("<I", out, 12, cells)
        out += b"".join(struct.pack("<iIi", p, 1, 0) for p in range(cells))
        offset = 28
        v_trans, n_layer = struct.unpack_from("<II", data, offset)
        if v_trans not in (0, 1) or not 0 < n_layer < 10_000:
            return None
        out += data[offset:offset + 8]
        offset += 8
        for block in range(2 * n_layer):  # K of every layer, then V of every layer
            transposed = v_trans and block >= n_layer
            if transposed:  # type, element size, row length; then each element per cell
                _type, element, width = struct.unpack_from("<iII", data, offset)
                size = width * element
                if not element or offset + 12 + size > len(data):
                    return None
                row = np.frombuffer(data, np.uint8, size, offset + 12).reshape(width, element)
                body = np.repeat(row, cells, axis=0).tobytes()
            else:  # type, row size; then one row per cell
                (size,) = struct.unpack_from("<Q", data, offset + 4)
                body = bytes(data[offset + 12:offset + 12 + size]) * cells
            if offset + 12 + size > len(data):
                return None
            out += data[offset:offset + 12]
            out += body
            offset += 12 + size
        return out if offset == len(data) else None
    except struct.error:
        return None


def turn_s(timing: dict[str, float]) -> float:
    """Seconds a turn deep in a chat takes with one kernel's timing."""
    return timing["batch_s"] + REPLY * timing["token_s"]


def verdict(timings: dict[str, dict[str, float]]) -> str:
    """"on" where flash attention gives the quicker turn, else "off" (the fixed rule's choice,
    which also keeps long prompts on the side context: flash_prefill.py)."""
    return "on" if turn_s(timings["on"]) < turn_s(timings["off"]) else "off"


class _Probe:
    """One context of the model, one kernel, its cache holding DEPTH widened cells."""

    def __init__(self, model: Any, flash: bool, threads: int, threads_batch: int) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = DEPTH + 256
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = 1
        params.n_threads = threads
        params.n_threads_batch = threads_batch
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(model, params) or None
        vocab = llama_cpp.llama_model_get_vocab(model)
        self.token = max(0, llama_cpp.llama_vocab_bos(vocab))
        self.tokens = (llama_cpp.llama_token * FOLLOW_UP)(*([self.token] * FOLLOW_UP))

    def fill(self) -> bool:
        if self.ctx is None:
            return False
        mem = llama_cpp.llama_get_memory(self.ctx)
        self._decode(1, 0)
        size = llama_cpp.llama_state_seq_get_size(self.ctx, 0)
        one = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(self.ctx, one, size, 0) != size:
            return False
        wide = widen(one, DEPTH)
        llama_cpp.llama_memory_clear(mem, True)
        if wide is None:
            return False
        buffer = (ctypes.c_uint8 * len(wide)).from_buffer(wide)
        return bool(llama_cpp.llama_state_seq_set_data(self.ctx, buffer, len(wide), 0)) \
            and llama_cpp.llama_memory_seq_pos_max(mem, 0) == DEPTH - 1

    def token_s(self) -> float:
        """Median seconds for one token after the DEPTH cells."""
        singles = []
        for i in range(TOKENS):
            started = time.perf_counter()
            self._decode(1, DEPTH + i)
            singles.append(time.perf_counter() - started)
        self._forget()
        return statistics.median(singles)

    def batch_s(self) -> float:
        """Seconds for a FOLLOW_UP batch after the DEPTH cells."""
        started = time.perf_counter()
        self._decode(FOLLOW_UP, DEPTH)
        took = time.perf_counter() - started
        self._forget()
        return took

    def _forget(self) -> None:
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), 0, DEPTH, -1)

    def _decode(self, n: int, pos: int) -> None:
        batch = llama_cpp.llama_batch_init(n, 0, 1)
        try:
            for i in range(n):
                batch.token[i] = self.tokens[i]
                batch.pos[i] = pos + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == n - 1
            batch.n_tokens = n
            if llama_cpp.llama_decode(self.ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            llama_cpp.llama_synchronize(self.ctx)
        finally:
            llama_cpp.llama_batch_free(batch)

    def close(self) -> None:
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None


def measure(model: Any, threads: int, threads_batch: int) -> dict[str, dict[str, float]] | None:
    """Median seconds per token and per follow-up batch with flash attention on and off, or
    None where this model's cache is not one `widen` knows or a context could not be made."""
    if not suits(model):
        return None
    probes = {"on": _Probe(model, True, threads, threads_batch),
              "off": _Probe(model, False, threads, threads_batch)}
    try:
        if not all(p.fill() for p in probes.values()):
            return None
        tokens: dict[str, list[float]] = {"on": [], "off": []}
        batches: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(ROUNDS):
            order = ("on", "off") if r % 2 else ("off", "on")
            for kind in order:
                tokens[kind].append(probes[kind].token_s())
            quick, slow = sorted(order, key=lambda kind: statistics.median(tokens[kind]))
            batches[quick].append(probes[quick].batch_s())
            timings = _medians(tokens, batches)
            if REPLY * timings[slow]["token_s"] > CLEAR * turn_s(timings[quick]):
                break  # its replies alone lose by far: its follow-up cannot change that
            batches[slow].append(probes[slow].batch_s())
            timings = _medians(tokens, batches)
            turns = sorted(turn_s(t) for t in timings.values())
            if turns[1] > CLEAR * turns[0]:  # no round's noise turns that around: done
                break
    except RuntimeError:
        return None
    finally:
        for probe in probes.values():
            probe.close()
    return timings


def _medians(tokens: dict[str, list[float]], batches: dict[str, list[float]]
             ) -> dict[str, dict[str, float]]:
    """Median timings per kernel; a follow-up that was not worth timing counts as free."""
    return {kind: {"token_s": statistics.median(tokens[kind]),
                   "batch_s": statistics.median(batches[kind]) if batches[kind] else 0.0}
            for kind in tokens}


def cpu_name() -> str:
    """The CPU's model name, which a verdict is kept for (a VM moved to another host
    measures again)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def verdict_key(fingerprint: str, threads: int, threads_batch: int) -> str:
    # The build's system info names its CPU features and backends: a rebuild of the same
    # version with other flags (no AMX, CUDA) measures again.
    build = hashlib.sha256(llama_cpp.llama_print_system_info()).hexdigest()[:12]
    return "|".join((fingerprint, f"{threads}/{threads_batch}", cpu_name(),
                     f"{llama_cpp.__version__}+{build}"))


class Verdicts:
    """Verdicts by verdict_key, in a JSON file (`path`) or, without one, in this process."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def _all(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return _VERDICTS
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or damaged: measure again
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        entry = self._all().get(key)
        flash = entry.get("flash") if isinstance(entry, dict) else None
        return flash if flash in ("on", "off") else None

    def put(self, key: str, flash: str, timings: dict[str, Any] | None = None) -> None:
        entries = self._all()
        entries[key] = {"flash": flash, "timings": timings,
                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if self.path is None:
            return
        try:  # a verdict is worth keeping, not worth failing a load for
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(entries, indent=1), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError:
            pass
