"""What ``import proxywhirl.cache`` gives once :func:`pw_cache.compat.install` ran."""

from __future__ import annotations

from pw_cache.compat.crypto import CredentialEncryptor
from pw_cache.compat.manager import CacheManager
from pw_cache.compat.models import (
    CacheConfig,
    CacheEntry,
    CacheStatistics,
    CacheTierConfig,
    CacheTierType,
    HealthStatus,
)
from pw_cache.compat.tiers import DiskCacheTier, MemoryCacheTier, SQLiteCacheTier

# A package for the import system, so that ``proxywhirl.cache.models`` etc. can be imported
# below it (the submodules themselves come from the alias finder).
__path__: list[str] = []

__all__ = [
    "CacheConfig",
    "CacheEntry",
    "CacheManager",
    "CacheStatistics",
    "CacheTierConfig",
    "CacheTierType",
    "CredentialEncryptor",
    "DiskCacheTier",
    "HealthStatus",
    "MemoryCacheTier",
    "SQLiteCacheTier",
]
