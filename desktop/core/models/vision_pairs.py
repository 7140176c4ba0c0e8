"""Vision models come as two GGUF files: the model and its projector (`mmproj-*.gguf`).

Repositories on the Hub and other apps' folders keep them side by side, often with several
projector precisions (F16, BF16, F32, Q8_0). Here a model is paired with the projector in its
own folder (the best precision first); the pair is kept in the library as the model's
`mmproj` setting, so loading the model loads both.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Higher is preferred: F16 is what llama.cpp's converters write by default and what model
# cards recommend; F32 is twice the size for no visible gain; quantized projectors lose most.
_RANK = [("f16", 5), ("bf16", 4), ("q8_0", 3), ("f32", 2)]


def is_projector(name: str) -> bool:
    """A projector file by its name (the convention of llama.cpp's converters and every
    repository that ships one)."""
    return "mmproj" in posixpath.basename(name.replace("\\", "/")).lower()


def _rank(name: str) -> int:
    lower = posixpath.basename(name.replace("\\", "/")).lower()
    for tag, score in _RANK:
        if re.search(rf"(^|[-_.]){tag}([-_.]|$)", lower):
            return score
    return 1


def best_projector(model: str, projectors: Iterable[str]) -> str | None:
    """The projector for `model` among `projectors` (repository paths or file paths): one in
    the model's own folder, the preferred precision first; None when there is none."""
    folder = posixpath.dirname(model.replace("\\", "/"))
    same = [p for p in projectors if posixpath.dirname(p.replace("\\", "/")) == folder]
    return max(same, key=lambda p: (_rank(p), p), default=None)


def projector_beside(model_path: Path) -> Path | None:
    """The projector file in a model file's folder (other apps keep a vision model's pair
    together: LM Studio, Jan and the Hugging Face cache one repository per folder)."""
    try:
        candidates = [str(p) for p in model_path.parent.iterdir()
                      if p.suffix.lower() == ".gguf" and is_projector(p.name) and p.is_file()]
    except OSError:
        return None
    best = best_projector(str(model_path), candidates)
    return Path(best) if best else None


def fits(model_info: Any, projector_path: Path) -> bool:
    """Whether a projector's output width matches the model's embedding width (a projector
    of another model would be refused by llama.cpp at load time). Unknown widths pass."""
    from desktop.core.errors import ModelFileError
    from desktop.core.models.gguf import read_gguf

    try:
        projector = read_gguf(projector_path, projector=True)
    except ModelFileError:
        return False
    width = projector.get("clip.vision.projection_dim")
    embed = model_info.arch_value("embedding_length") if model_info is not None else None
    return not (isinstance(width, int) and isinstance(embed, int) and width != embed)


def pair_in_library(library: Any, model_path: str | Path, projector: str | Path | None = None
                    ) -> Any:
    """Store the model's projector in its library settings (found beside it when not given);
    returns the entry, unchanged when there is no fitting projector."""
    from desktop.core.models.gguf import read_gguf

    entry = library.find(model_path)
    if entry is None:
        return None
    found = Path(projector) if projector else projector_beside(Path(entry.path))
    if found is None or entry.settings.get("mmproj") == str(found):
        return entry
    if projector is None and not fits(read_gguf(entry.path), found):
        return entry  # a projector of another model in the same folder: not this one's
    return library.set_settings(entry.path, {**entry.settings, "mmproj": str(found)})


def attach_projector(library: Any, model_path: str | Path, projector: str | Path) -> Any:
    """Pair a projector the user chose with a model (`chat --mmproj`): both are checked first."""
    from desktop.core.models.gguf import read_gguf

    read_gguf(projector, projector=True)  # not a projector: one sentence, nothing stored
    if library.find(model_path) is None:
        library.add(model_path)
    return pair_in_library(library, model_path, Path(projector).expanduser().absolute())
