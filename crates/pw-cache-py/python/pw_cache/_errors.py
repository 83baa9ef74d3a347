"""The exceptions of pw_cache, raised by the native module ``pw_cache._native``.

Every message is the engine's, which never contains a credential, a key or a token.
"""

from __future__ import annotations

__all__ = [
    "ClosedError",
    "ConfigError",
    "DecryptionError",
    "EncryptionKeyError",
    "Error",
    "ExportError",
    "InvalidEntryError",
    "NotStoredError",
    "TierError",
    "WarmError",
    "WrongKeyError",
]


class Error(Exception):
    """Base class of every error pw_cache raises."""


class ConfigError(Error, ValueError):
    """An option or config document that is unknown, malformed or out of bounds (names it)."""


class EncryptionKeyError(Error):
    """No usable encryption key: a malformed key, or a key file that cannot be read or made."""


class WrongKeyError(EncryptionKeyError):
    """The encryption key does not open this cache's stored credentials (nothing was read)."""


class InvalidEntryError(Error, ValueError):
    """An entry (or a TTL) that cannot be stored as given."""


class ClosedError(Error):
    """The cache was closed."""


class TierError(Error):
    """A tier could not be opened, listed, flushed or closed."""


class NotStoredError(TierError):
    """No tier stored the entry (each enabled tier failed or is degraded)."""


class WarmError(Error):
    """A warm file that cannot be used at all (missing, unsupported, not a JSON array ...)."""


class ExportError(Error):
    """An export that could not be written (nothing was replaced)."""


class DecryptionError(Error):
    """A credential token that no key opens, or bytes that are not a Fernet token."""
