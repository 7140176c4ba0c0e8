"""Find GGUF models other apps already downloaded, so they can be added without copying."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MAGIC = b"GGUF"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def known_locations() -> dict[str, list[Path]]:
    home = _home()
    if sys.platform == "win32":
        app_data = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        roaming = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
        gpt4all = [app_data / "nomic.ai" / "GPT4All"]
        jan_data = roaming / "Jan" / "data"
    elif sys.platform == "darwin":
        support = home / "Library" / "Application Support"
        gpt4all = [support / "nomic.ai" / "GPT4All"]
        jan_data = support / "Jan" / "data"
    else:
        data = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
        gpt4all = [data / "nomic.ai" / "GPT4All"]
        jan_data = data / "Jan" / "data"
    hf_home = Path(os.environ.get("HF_HOME", home / ".cache" / "huggingface"))
    ollama = [Path(os.environ.get("OLLAMA_MODELS", home / ".ollama" / "models")) / "blobs"]
    if sys.platform.startswith("linux"):
        ollama.append(Path("/usr/share/ollama/.ollama/models/blobs"))  # the system service
    return {
        "LM Studio": [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"],
        "GPT4All": gpt4all,
        "Jan": [jan_data / "llamacpp" / "models", jan_data / "models", home / "jan" / "models"],
        "Ollama": ollama,
        "Hugging Face cache": [Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))],
    }


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def scan(locations: dict[str, list[Path]] | None = None,
         min_size: int = 1024 * 1024) -> list[tuple[str, Path]]:
    """(app, path) for every GGUF found; Ollama blobs have no extension, so check the magic."""
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for app, roots in (locations or known_locations()).items():
        for root in roots:
            if not root.is_dir():
                continue
            for path in root.rglob("*"):
                if path.name.endswith(".part") or "mmproj" in path.name.lower():
                    continue
                is_candidate = path.suffix.lower() == ".gguf" or (
                    app == "Ollama" and path.name.startswith("sha256"))
                if not is_candidate or not path.is_file():
                    continue
                real = path.resolve()  # HF cache snapshots are symlinks to blobs
                if real in seen or real.stat().st_size < min_size or not _is_gguf(real):
                    continue
                seen.add(real)
                # Keep a readable name: the HF cache's snapshot link, not its hashed blob.
                found.append((app, path.absolute() if path.suffix.lower() == ".gguf" else real))
    return found


def with_projectors(found: list[tuple[str, Path]]) -> list[tuple[str, Path, Path | None]]:
    """Each found model with the vision projector (mmproj) kept beside it, None for a text
    model. Adding the model to the library pairs them (vision_pairs.pair_in_library)."""
    from desktop.core.models.vision_pairs import projector_beside

    return [(app, path, projector_beside(path)) for app, path in found]
