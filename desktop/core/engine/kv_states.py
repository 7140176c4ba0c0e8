"""Saved chat KV states on disk (`<data dir>/kv-states/<model>/<chat>.kvstate`): how much room
they take, and clearing them. The worker writes, reads and evicts them (state_cache.py);
this is the side the app's Settings and `delete chat` use, without llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def states_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "kv-states"


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int

    def describe(self) -> str:
        if not self.files:
            return "No saved chat states."
        return f"{self.files} saved chat state{'s' if self.files != 1 else ''}, " \
               f"{self.bytes / 2**20:,.0f} MB"


def usage(data_dir: Path) -> Usage:
    files = total = 0
    for file in states_dir(data_dir).glob("*/*.kvstate"):
        try:
            total += file.stat().st_size
            files += 1
        except OSError:
            continue  # evicted by the worker while we looked
    return Usage(files, total)


def clear(data_dir: Path) -> Usage:
    """Delete every saved state (chats stay; returning to one re-reads it once)."""
    freed = usage(data_dir)
    for file in states_dir(data_dir).glob("*/*.kvstate"):
        file.unlink(missing_ok=True)
    return freed
