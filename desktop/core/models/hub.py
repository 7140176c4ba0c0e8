"""Hugging Face Hub search and file listing, through huggingface_hub's HfApi.

The endpoint comes from HF_ENDPOINT like every Hugging Face tool; it is read per call (not at
import) so tests and users can point Hearth at another Hub or a local mirror.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from desktop.core.errors import HearthError
from desktop.core.models.quant import ModelFile, group_files, quality_note
from desktop.core.models.vision_pairs import best_projector, is_projector

DEFAULT_ENDPOINT = "https://huggingface.co"
SORTS = {"downloads": "downloads", "recent": "last_modified", "likes": "likes",
         "trending": "trending_score"}


class HubError(HearthError):
    """The Hub could not be reached or refused a request."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def file_url(repo: str, filename: str, revision: str = "main") -> str:
    return f"{endpoint()}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy")


def _check_reachable() -> None:
    """Fail at once when the Hub cannot be reached: huggingface_hub retries a dead connection
    five times with backoff (about 23 s) before giving up, a long wait for an offline user."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return  # only the proxy knows; let the client try through it
    parts = urlsplit(endpoint())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=5).close()
    except OSError as exc:
        raise HubError(f"Cannot reach the Hugging Face Hub at {endpoint()}. Check your "
                       "connection; everything already downloaded keeps working offline.",
                       details=repr(exc)) from exc


def _api(token: str | None) -> Any:
    # No telemetry, ever (read by huggingface_hub at import, hence before it).
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import HfApi  # heavy: imported only when the user asks the Hub

    # Its retry warnings would clutter the terminal; failures reach the user as HubError.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    _check_reachable()
    return HfApi(endpoint=endpoint(), token=token or False)


def _hub_error(exc: Exception, what: str) -> HubError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return HubError(f"{what}: access denied. The repository is gated or private; accept its "
                        "terms on huggingface.co and enter your Hugging Face token.",
                        details=str(exc))
    if status == 404:
        return HubError(f"{what}: not found on the Hub.", details=str(exc))
    if status is not None:
        return HubError(f"{what}: the Hub answered with an error ({status}).", details=str(exc))
    return HubError(f"Cannot reach the Hugging Face Hub at {endpoint()}. Check your connection; "
                    "everything already downloaded keeps working offline.", details=repr(exc))


def _license(info: Any) -> str | None:
    card = getattr(info, "card_data", None)
    if card is not None:
        value = card.get("license") if hasattr(card, "get") else getattr(card, "license", None)
        if value:
            return str(value)
    for tag in getattr(info, "tags", None) or []:
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def _repo_summary(info: Any) -> dict[str, Any]:
    modified = getattr(info, "last_modified", None)
    return {
        "repo": info.id,
        "author": info.author or info.id.split("/")[0],
        "downloads": info.downloads,
        "likes": info.likes,
        "last_modified": modified.isoformat() if modified else None,
        "license": _license(info),
        "gated": bool(info.gated),
    }


def search(query: str, *, sort: str = "downloads", limit: int = 20,
           token: str | None = None) -> list[dict[str, Any]]:
    """GGUF repositories matching `query`, most downloaded (or most recent) first."""
    try:
        models = _api(token).list_models(
            search=query or None, filter="gguf", sort=SORTS.get(sort, sort), limit=limit,
            expand=["author", "downloads", "likes", "lastModified", "gated", "cardData", "tags"])
        return [_repo_summary(m) for m in models]
    except HubError:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds
        raise _hub_error(exc, f"Searching the Hub for “{query}”") from exc


@dataclass
class RepoFiles:
    summary: dict[str, Any]
    models: list[ModelFile]
    projectors: list[str] = field(default_factory=list)  # the repository's mmproj files


def repo_files(repo: str, *, token: str | None = None) -> RepoFiles:
    """Every GGUF model of a repository, split files grouped, with sizes and LFS sha256."""
    try:
        info = _api(token).model_info(repo, files_metadata=True)
    except HubError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(exc, f"Listing {repo}") from exc
    entries = []
    for sibling in info.siblings or []:
        sha = sibling.lfs.sha256 if sibling.lfs else None
        size = sibling.lfs.size if sibling.lfs else sibling.size
        entries.append((sibling.rfilename, int(size or 0), sha))
    grouped = group_files(entries)
    models = [m for m in grouped if not is_projector(m.name)]
    projectors = {m.name: m for m in grouped if is_projector(m.name) and not m.split}
    for model in models:
        if getattr(info, "sha", None):
            model.revision = info.sha
        # A vision model: its projector comes with it (downloaded and verified with it).
        chosen = best_projector(model.name, projectors)
        if chosen is not None:
            extra = projectors[chosen]
            model.mmproj = chosen
            model.files = [*model.files, chosen]
            model.sha256 = {**model.sha256, chosen: extra.sha256.get(chosen)}
            model.sizes = {**model.sizes, chosen: extra.size}
            model.size += extra.size
    return RepoFiles(_repo_summary(info), models, sorted(projectors))


def describe(model: ModelFile) -> dict[str, Any]:
    return {"name": model.name, "files": model.files, "size": model.size,
            "quantization": model.quant, "quality": quality_note(model.quant),
            "sha256": model.sha256, "split": model.split, "revision": model.revision,
            "mmproj": model.mmproj, "vision": model.mmproj is not None}
