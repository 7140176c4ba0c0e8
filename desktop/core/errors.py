"""Errors that carry a message meant for the user, so every front end can show it as is."""

from __future__ import annotations


class HearthError(Exception):
    """Base error: `str(err)` is a sentence a user can read; `details` is for "copy details"."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ModelFileError(HearthError):
    """A model file that is missing, not a GGUF, truncated or otherwise unusable."""


class TemplateError(HearthError):
    """A chat template that cannot be rendered safely."""


class UnsafeTemplateError(TemplateError):
    """A chat template that tried to reach Python internals (a hostile model file)."""


class TemplateRefused(TemplateError):
    """The template itself refused a conversation (raise_exception), e.g. a role order."""


class EngineError(HearthError):
    """The inference worker reported an error for a request."""


class EngineCrashed(EngineError):
    """The worker process died; `details` holds the tail of its log."""


class StoreError(HearthError):
    """The chat database could not be opened or upgraded."""


class NotFound(HearthError):
    """A conversation, message or model that does not exist."""


def error_text(exc: BaseException) -> str:
    """The sentence to show for any exception: ours carry one, others fall back to str()."""
    return exc.message if isinstance(exc, HearthError) else (str(exc) or type(exc).__name__)
