"""The exception tree users of revops can catch.

RevopsError                  base of everything we raise on purpose
+-- ConfigError              a definition or setting is invalid (message names file and field)
+-- ValidationFailed         input refused; nothing was stored
+-- NotFound                 a contact, list or definition does not exist
+-- StoreUnavailable         the database cannot be reached; retry later
+-- TemporalUnavailable      the Temporal frontend cannot be reached; retry later
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "NotFound",
    "RevopsError",
    "StoreUnavailable",
    "TemporalUnavailable",
    "ValidationFailed",
]


class RevopsError(Exception):
    """Base class of every error revops raises on purpose."""


class ConfigError(RevopsError):
    """A definition or setting is invalid; the message names the file and field."""


class ValidationFailed(RevopsError):
    """Input was refused and nothing of it was stored."""


class NotFound(RevopsError):
    """A contact, list or definition that was asked for does not exist."""


class StoreUnavailable(RevopsError):
    """The database cannot be reached; the caller should retry later."""


class TemporalUnavailable(RevopsError):
    """The Temporal frontend cannot be reached; the caller should retry later."""
