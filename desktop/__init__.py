"""Hearth: a private, on-device AI chat application."""

__version__ = "0.1.0"
