"""Will it fit? Memory on this machine and an honest estimate of what a model file needs.

need = weights + KV cache + overhead
- weights: the file size (llama.cpp maps the tensors as stored).
- KV cache: 2 (K and V) x layers x context x KV heads x head size x 2 bytes (f16 cache), from
  the GGUF header when the file is local. Before download, from an approximation: parameters
  estimated from size and the quant's bits per weight, and a KV size per token that grows with
  the square root of parameters (fitted to Llama/Qwen/Gemma/Mistral configs with GQA, within
  about a factor of two; the label says "about").
- overhead: llama.cpp's compute buffers and runtime, ~5% of weights plus 300 MB.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from desktop.core.models.gguf import GGUFInfo
from desktop.core.models.quant import BITS_PER_WEIGHT

MB = 1024 * 1024
GB = 1024 * MB
OS_RESERVE = 1.5 * GB  # leave room for the OS, the app and a browser


@dataclass
class Memory:
    total_ram: int
    available_ram: int
    gpu_name: str | None = None
    total_vram: int = 0
    free_vram: int = 0
    unified: bool = False  # Apple silicon: the GPU uses system RAM

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_memory() -> Memory:
    import psutil

    vm = psutil.virtual_memory()
    memory = Memory(total_ram=int(vm.total), available_ram=int(vm.available))
    if sys.platform == "darwin" and platform.machine() == "arm64":
        # Metal can use about 75% of unified memory by default (recommendedMaxWorkingSetSize).
        memory.unified = True
        memory.gpu_name = "Apple GPU (unified memory)"
        memory.total_vram = int(vm.total * 0.75)
        memory.free_vram = min(memory.total_vram, int(vm.available))
        return memory
    try:
        import pynvml  # from nvidia-ml-py; optional

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            memory.gpu_name = name.decode() if isinstance(name, bytes) else str(name)
            memory.total_vram, memory.free_vram = int(info.total), int(info.free)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVIDIA driver, no library: CPU only  # noqa: BLE001
        pass
    return memory


@dataclass
class Estimate:
    weights: int
    kv_cache: int
    overhead: int
    n_ctx: int
    layers: int | None
    exact: bool  # from a local header (True) or the pre-download approximation (False)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def _overhead(weights: int) -> int:
    return int(weights * 0.05 + 300 * MB)


def estimate_from_header(info: GGUFInfo, n_ctx: int) -> Estimate:
    return estimate_from_summary(info.summary(), n_ctx)


def estimate_from_summary(summary: dict[str, Any], n_ctx: int) -> Estimate:
    """The exact estimate from a header summary (kept in the library, so no file read)."""
    n_ctx = min(n_ctx, summary.get("context_length") or n_ctx)
    size = int(summary["file_size"])
    kv = int(summary["kv_bytes_per_token"]) * n_ctx
    return Estimate(size, kv, _overhead(size), n_ctx, summary.get("block_count"), True)


def estimate_from_size(size: int, quant: str | None, n_ctx: int) -> Estimate:
    bits = BITS_PER_WEIGHT.get(quant or "", 4.9)
    params = size * 8 / bits
    # f16 KV bytes per token ~ 1.4 * sqrt(params): 8B -> 125 KB (Llama 3 8B: 128 KB),
    # 270M -> 23 KB (Gemma 3 270M: 18 KB); models without GQA need more, hence "about".
    kv_per_token = 1.4 * math.sqrt(params)
    return Estimate(size, int(kv_per_token * n_ctx), _overhead(size), n_ctx, None, False)


@dataclass
class Fit:
    label: str  # gpu_full | gpu_partial | cpu | too_large
    text: str
    gpu_layers: int
    estimate: Estimate
    memory: Memory

    def as_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "label": self.label, "text": self.text, "gpu_layers": self.gpu_layers,
            "need_bytes": e.total, "weights_bytes": e.weights, "kv_cache_bytes": e.kv_cache,
            "overhead_bytes": e.overhead, "n_ctx": e.n_ctx, "exact": e.exact,
            "available_ram_bytes": self.memory.available_ram,
            "free_vram_bytes": self.memory.free_vram,
        }


def judge(estimate: Estimate, memory: Memory, layers: int | None = None) -> Fit:
    need = estimate.total
    about = "" if estimate.exact else "about "
    summary = (f"needs {about}{need / GB:.1f} GB (weights {estimate.weights / GB:.1f} GB, "
               f"context {estimate.kv_cache / GB:.2f} GB for {estimate.n_ctx} tokens, "
               f"runtime {estimate.overhead / GB:.1f} GB)")
    ram_budget = max(0, memory.total_ram - OS_RESERVE) if memory.unified else max(
        0, memory.available_ram - OS_RESERVE // 3)
    if memory.free_vram and need <= memory.free_vram:
        return Fit("gpu_full", f"Runs fully on GPU: {summary}; "
                   f"{memory.free_vram / GB:.1f} GB free on {memory.gpu_name}.",
                   layers if layers is not None else 999, estimate, memory)
    if memory.free_vram and not memory.unified and need <= memory.free_vram + ram_budget:
        n = layers or 32
        per_layer = (estimate.weights + estimate.kv_cache) / n
        fit_layers = max(0, min(n, int((memory.free_vram - estimate.overhead) / per_layer)))
        if fit_layers > 0:
            return Fit("gpu_partial", f"Partly on GPU ({fit_layers} of {n} layers): {summary}.",
                       fit_layers, estimate, memory)
    if need <= ram_budget:
        return Fit("cpu", f"CPU only, fits in RAM: {summary}; "
                   f"{memory.available_ram / GB:.1f} GB available.", 0, estimate, memory)
    return Fit("too_large", f"Too large for this machine: {summary}, but only "
               f"{memory.available_ram / GB:.1f} GB RAM available"
               + (f" and {memory.free_vram / GB:.1f} GB VRAM." if memory.free_vram else "."),
               0, estimate, memory)


def recommend(candidates: list[tuple[str, str | None, Fit]]) -> str | None:
    """The best-quality file that fits (prefer full GPU, then partial, then CPU)."""
    order = {"gpu_full": 0, "gpu_partial": 1, "cpu": 2}
    usable = [(name, quant, fit) for name, quant, fit in candidates if fit.label in order]
    if not usable:
        return None
    best_place = min(order[f.label] for _, _, f in usable)
    placed = [(n, q) for n, q, f in usable if order[f.label] == best_place]
    # Beyond Q6_K quality barely improves while speed drops: prefer <= Q6_K when available.
    sensible = [(n, q) for n, q in placed if BITS_PER_WEIGHT.get(q or "", 0) <= 6.6] or placed
    return max(sensible, key=lambda item: BITS_PER_WEIGHT.get(item[1] or "", 0))[0]


def too_large_warning(info: GGUFInfo, n_ctx: int, memory: Memory) -> str | None:
    """What to tell someone loading a model this machine cannot hold (None when it fits).

    Loading is not refused: llama.cpp maps the file, so it may still start, only slowly."""
    fit = judge(estimate_from_header(info, n_ctx), memory)
    if fit.label != "too_large":
        return None
    return (f"{fit.text} Expect it to be very slow or to stop; a smaller quantization or a "
            "shorter context fits better.")


def gpu_layer_plan(info: GGUFInfo, n_ctx: int, memory: Memory) -> tuple[int, str]:
    """How many layers to offload, from free VRAM and the model's per-layer size, and why."""
    layers = (info.block_count or 0) + 1  # + the output layer, as llama.cpp counts them
    if not memory.free_vram:
        return 0, "no GPU memory detected: running on the CPU"
    fit = judge(estimate_from_header(info, n_ctx), memory, layers=layers)
    if fit.label == "gpu_full":
        return layers, f"all {layers} layers on {memory.gpu_name} (auto)"
    if fit.label == "gpu_partial":
        return fit.gpu_layers, (f"{fit.gpu_layers} of {layers} layers on {memory.gpu_name}, "
                                "the rest on the CPU (auto)")
    return 0, f"the model does not fit in {memory.free_vram / GB:.1f} GB of VRAM: CPU (auto)"
