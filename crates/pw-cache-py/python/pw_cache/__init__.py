"""pw_cache: a three-level proxy cache, compatible with proxywhirl 0.3.3's cache files.

The cache itself is written in Rust (the extension module ``pw_cache._native``); this package
re-exports its API:

- :class:`Cache` -- the cache (L1 memory, L2 JSONL or SQLite, L3 SQLite or Redis), opened
  with keyword options mirroring proxywhirl's ``CacheConfig``, or with
  :meth:`Cache.from_config_json`. Thread-safe; a context manager.
- :class:`Tier` -- one level of a cache used on its own (:meth:`Cache.tier`), for tests and
  tools: no promotion, no write-through, no statistics.
- :class:`Entry` -- one cached proxy (the 21 fields of proxywhirl's ``CacheEntry``, read-only).
- :class:`Secret` -- a credential; ``str``/``repr`` show ``**********``, never the value.
- :class:`EntryModel` -- entries as instances of a pydantic model of the same 21 fields
  (``cache.get(key, into=EntryModel(Model, SecretStr, HealthStatus))``), built in Rust.
- :func:`generate_cache_key` -- the key proxywhirl derives from a proxy URL.
- the exceptions, all subclasses of :class:`Error`.

The engine logs to the standard :mod:`logging` module, logger ``"pw_cache"``.

The drop-in replacement for ``proxywhirl.cache`` is :mod:`pw_cache.compat`. See
``docs/python.md``.
"""

from __future__ import annotations

import logging as _logging

from pw_cache._errors import (
    ClosedError,
    ConfigError,
    DecryptionError,
    EncryptionKeyError,
    Error,
    ExportError,
    InvalidEntryError,
    NotStoredError,
    TierError,
    WarmError,
    WrongKeyError,
)
from pw_cache._native import (
    Cache,
    Entry,
    EntryModel,
    Secret,
    Tier,
    __version__,
    generate_cache_key,
)

__all__ = [
    "Cache",
    "ClosedError",
    "ConfigError",
    "DecryptionError",
    "EncryptionKeyError",
    "Entry",
    "EntryModel",
    "Error",
    "ExportError",
    "InvalidEntryError",
    "NotStoredError",
    "Secret",
    "Tier",
    "TierError",
    "WarmError",
    "WrongKeyError",
    "__version__",
    "generate_cache_key",
]

# A library does not configure logging: without a handler of the application's, nothing is
# printed (records of WARNING and above would otherwise reach logging's last resort handler).
_logging.getLogger("pw_cache").addHandler(_logging.NullHandler())
