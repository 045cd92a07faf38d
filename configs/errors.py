"""The configuration error, in a module of its own so that every config module can raise it
(:mod:`agentropy.configs.schema` and the method configs of :mod:`agentropy.configs.methods`)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""
