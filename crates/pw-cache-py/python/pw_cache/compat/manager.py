"""proxywhirl 0.3.3's ``CacheManager`` — placeholder until the native engine lands."""

from __future__ import annotations

__all__ = ["CacheManager", "TTLManager"]


class CacheManager:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            "CacheManager is not available yet in pw_cache.compat"
        )


class TTLManager:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("TTLManager is not available yet in pw_cache.compat")
