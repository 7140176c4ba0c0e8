"""Images in prompts: where a user turn's images go, and the image parts the worker reads.

A user turn with images is rendered with a private marker per image at the start of its
content (any chat template passes message contents through, so this works with every
template, the built-in ones included). After rendering, `expand_images` splits the message
parts at the markers into `{"image": path}` parts, which the worker evaluates through libmtmd
(engine_worker/multimodal.py) in order with the text. The marker characters are taken out of
what the user typed, so a message can never point at another image.
"""

from __future__ import annotations

import re
from typing import Any

_OPEN, _CLOSE = "\ue002", "\ue003"
_MARKER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


def marked_content(text: str, first_index: int, count: int) -> str:
    """`text` led by markers for images first_index .. first_index+count-1 of the prompt."""
    clean = text.replace(_OPEN, "").replace(_CLOSE, "")
    if not count:
        return clean
    marks = "".join(f"{_OPEN}{first_index + k}{_CLOSE}" for k in range(count))
    return f"{marks}\n{clean}"


def strip_markers(text: str) -> str:
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def expand_images(parts: list[dict[str, Any]], paths: list[str]) -> list[dict[str, Any]]:
    """Split message parts at image markers into text parts and {"image": path} parts."""
    if not paths:
        return parts
    out: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text", "")
        if part.get("special") or _OPEN not in text:
            out.append(part)
            continue
        pos = 0
        for match in _MARKER.finditer(text):
            if match.start() > pos:
                out.append({**part, "text": text[pos:match.start()]})
            index = int(match.group(1))
            if index < len(paths):
                out.append({"image": paths[index]})
            pos = match.end()
        if pos < len(text):
            out.append({**part, "text": text[pos:]})
    return out


def turn_content(message: Any, paths: list[str], images: Any, enabled: bool) -> str:
    """A history message's content for the template: with markers for its images when the
    model sees images (their files appended to `paths`), its text alone otherwise."""
    text = message.context or message.content
    hashes = list(message.images) if enabled and message.role == "user" else []
    if not hashes:
        return strip_markers(text)
    first = len(paths)
    paths.extend(str(images.require(h)) for h in hashes)
    return marked_content(text, first, len(hashes))


def image_costs(counts: list[int], history: list[Any], model_path: str, images: Any,
                engine: Any, cache: dict[Any, int]) -> list[int]:
    """Token counts of the history with each message's image positions added (the context
    budget must see them: one image can take hundreds of positions)."""
    out = list(counts)
    for i, message in enumerate(history):
        for digest in message.images if message.role == "user" else []:
            key = (model_path, "image", digest)
            if key not in cache:
                cache[key] = engine.count_image_tokens([str(images.require(digest))])[0]
            out[i] += cache[key]
    return out


def projector_for(model_path: str, own_settings: dict[str, Any]) -> str | None:
    """The vision projector stored with a model in the library (its `mmproj` setting), when
    that file is still there."""
    from pathlib import Path

    mmproj = own_settings.get("mmproj")
    if mmproj and Path(str(mmproj)).is_file():
        return str(mmproj)
    return None


def require_sight(history: list[Any], model: Any) -> None:
    """A turn that sends images needs a model that sees them (its projector loaded): one
    sentence instead of a reply that silently ignored the pictures."""
    if history and history[-1].role == "user" and history[-1].images \
            and not (model.loaded or {}).get("vision"):
        from pathlib import Path

        from desktop.core.errors import HearthError

        raise HearthError(f"{Path(model.path).name} cannot see images: choose a vision model "
                          "(one with its mmproj projector file).")
