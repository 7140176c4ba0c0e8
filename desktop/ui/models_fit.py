"""Fit labels for the Models window: will this file run here, and how (one judge per window)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTableWidgetItem

from desktop.core.models.fit import (
    Fit,
    Memory,
    detect_memory,
    estimate_from_size,
    estimate_from_summary,
    judge,
)
from desktop.ui.widgets import item

FIT_SHORT = {"gpu_full": "Runs fully on GPU", "gpu_partial": "Partly on GPU",
             "cpu": "CPU only, fits in RAM", "too_large": "Too large"}
# Tones, not colours: theme.tone() makes each readable on the light or dark background.
# "CPU only" is plain text: it is a fine outcome, not a warning.
FIT_TONES: dict[str, str | None] = {"gpu_full": "good", "gpu_partial": "info", "cpu": None,
                                    "too_large": "error"}


class FitJudge:
    def __init__(self, n_ctx: int, memory: Memory | None = None) -> None:
        self.n_ctx = n_ctx
        self.memory = memory or detect_memory()

    def machine_text(self) -> str:
        m = self.memory
        return (f"This machine: {m.available_ram / 1e9:.1f} GB RAM available"
                + (f", {m.free_vram / 1e9:.1f} GB free on {m.gpu_name}" if m.free_vram
                   else ", no GPU offload detected")
                + f". Estimates are for a {self.n_ctx}-token context.")

    def fit(self, size: int, quant: str | None, summary: dict[str, Any] | None = None) -> Fit:
        if summary and "kv_bytes_per_token" in summary:
            # From the header summary stored in the library: no file read on the GUI thread.
            return judge(estimate_from_summary(summary, self.n_ctx), self.memory)
        return judge(estimate_from_size(size, quant, self.n_ctx), self.memory)

    def item(self, size: int, quant: str | None, summary: dict[str, Any] | None = None
             ) -> tuple[QTableWidgetItem, Fit]:
        fit = self.fit(size, quant, summary)
        return item(FIT_SHORT[fit.label], fit.text, FIT_TONES[fit.label]), fit
