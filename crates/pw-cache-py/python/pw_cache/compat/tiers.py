"""proxywhirl 0.3.3's cache tiers (``proxywhirl.cache.tiers``) — placeholder until the native tiers land."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "DiskCacheTier",
    "JsonlCacheTier",
    "MemoryCacheTier",
    "SQLiteCacheTier",
    "TierType",
]


class TierType(str, Enum):
    """Which tier a tier object is."""

    L1_MEMORY = "l1_memory"
    L2_FILE = "l2_file"
    L3_SQLITE = "l3_sqlite"


class _Unavailable:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} is not available yet in pw_cache.compat"
        )


class MemoryCacheTier(_Unavailable):
    """L1 (memory)."""


class JsonlCacheTier(_Unavailable):
    """L2 as JSONL shards."""


class DiskCacheTier(_Unavailable):
    """L2 as one SQLite database."""


class SQLiteCacheTier(_Unavailable):
    """L3 (SQLite)."""
