"""proxywhirl 0.3.3's ``CacheManager`` and ``TTLManager`` on pw-cache's engine.

``CacheManager(config)`` opens one ``pw_cache.Cache`` from ``config`` and keeps proxywhirl's
method names, arguments and return values: ``put -> bool``, ``get -> CacheEntry | None``,
``delete -> bool``, ``clear -> int``, ``invalidate_by_health -> None``,
``warm_from_file -> {"loaded", "skipped", "failed"}`` (a file that cannot be used at all is
``{"loaded": 0, "skipped": 0, "failed": 1}``, as in the reference),
``export_to_file -> {"exported", "failed"}``, ``get_statistics -> CacheStatistics``.

The engine's behaviour is pw-cache's (``docs/migrating-from-proxywhirl.md``). ``l1_tier``,
``l2_tier`` and ``l3_tier`` are proxywhirl's tier classes bound to one level of the engine
(``pw_cache.Cache.tier``): ``manager.l1_tier.get(key)`` looks in L1 only, ``put`` stores in that
level only, and ``manager.l2_tier.enabled = False`` switches L2 off in the engine
(``Cache.set_tier_enabled``), as in the reference. A disabled level is, as in the reference, a
disabled ``MemoryCacheTier`` of its own.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from pw_cache.compat import _log
from pw_cache.compat._convert import (
    config_json,
    default_key_file,
    entry_model,
    native_module,
)
from pw_cache.compat.crypto import CURRENT_KEY_VAR, CredentialEncryptor
from pw_cache.compat.models import (
    CacheConfig,
    CacheEntry,
    CacheStatistics,
    L2BackendType,
)
from pw_cache.compat.tiers import (
    CacheTier,
    DiskCacheTier,
    JsonlCacheTier,
    MemoryCacheTier,
    SQLiteCacheTier,
    TierType,
    bound_tier,
)

__all__ = ["CacheManager", "TTLManager"]

_WARM_FAILED = {"loaded": 0, "skipped": 0, "failed": 1}


class TTLManager:
    """Background removal of expired entries every ``cleanup_interval`` seconds.

    ``start``/``stop`` are idempotent; ``enabled`` says whether the thread runs. Each pass is
    the engine's cleanup of every tier.
    """

    def __init__(self, cache_manager: CacheManager, cleanup_interval: int = 60) -> None:
        self.cache_manager = cache_manager
        self.cleanup_interval = cleanup_interval
        self.enabled = False
        self.cleanup_thread: threading.Thread | None = None
        self._stop_event = threading.Event()

    def start(self) -> None:
        """Starts the cleanup thread (nothing if it runs)."""
        if self.enabled:
            return
        self.enabled = True
        _log.info("TTL background cleanup started (interval: {}s)", self.cleanup_interval)
        self._stop_event.clear()
        self.cleanup_thread = threading.Thread(
            target=self._loop, name="pw-cache-compat-ttl", daemon=True
        )
        self.cleanup_thread.start()

    def stop(self) -> None:
        """Stops the cleanup thread (nothing if it is stopped)."""
        if not self.enabled:
            return
        self.enabled = False
        self._stop_event.set()
        if self.cleanup_thread is not None:
            self.cleanup_thread.join(timeout=5)
        _log.info("TTL background cleanup stopped")

    def _loop(self) -> None:
        while self.enabled and not self._stop_event.is_set():
            try:
                self._cleanup_expired_entries()
            except Exception as error:
                _log.error("TTL cleanup error: {}", error)
            self._stop_event.wait(self.cleanup_interval)

    def _cleanup_expired_entries(self) -> int:
        """One pass now; how many expired entries were removed."""
        return self.cache_manager._cleanup_expired_entries()


class CacheManager:
    """proxywhirl's three-tier cache manager, running on ``pw_cache.Cache``."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        configured = config.encryption_key.get_secret_value() if config.encryption_key else None
        # With no key configured and none in the environment, proxywhirl made a throw-away key;
        # the engine keeps one in a key file instead, so that a restart reads its credentials.
        self._key_file: Path | None = None
        if configured is None and not os.environ.get(CURRENT_KEY_VAR):
            self._key_file = default_key_file(config)
        self._engine: Any = self._open_engine(config_json(config))
        self._entry_model: Any = entry_model()
        self.encryptor = CredentialEncryptor(
            key=configured.encode("utf-8") if configured else self._engine_key()
        )
        self.l1_tier: Any = self._tier_view(1)
        self.l2_tier: Any = self._tier_view(2)
        self.l3_tier: Any = self._tier_view(3)
        self.ttl_manager = TTLManager(self, cleanup_interval=config.cleanup_interval_seconds)
        if config.enable_background_cleanup:
            self.ttl_manager.start()

    def _open_engine(self, document: str) -> Any:
        # One L1 shard: ``max_entries`` exact, as proxywhirl's L1.
        cache = native_module().Cache
        if self._key_file is None:
            return cache.from_config_json(document, l1_shards=1)
        return cache.from_config_json(document, key_file=str(self._key_file), l1_shards=1)

    def _engine_key(self) -> bytes | None:
        if self._key_file is not None and self._key_file.is_file():
            return self._key_file.read_bytes().strip()
        return None

    def _tier_view(self, level: int) -> CacheTier:
        """Level ``level`` of the engine as proxywhirl's tier object for it."""
        config = self.config
        tier_config = (config.l1_config, config.l2_config, config.l3_config)[level - 1]
        tier_type = (TierType.L1_MEMORY, TierType.L2_FILE, TierType.L3_SQLITE)[level - 1]
        handle = self._engine.tier(f"l{level}") if tier_config.enabled else None
        if handle is None:
            # As in proxywhirl: a disabled tier is a (disabled) memory tier.
            tier = MemoryCacheTier(tier_config, tier_type)
            tier.enabled = False
            return tier
        if level == 1:
            return bound_tier(
                MemoryCacheTier, self._engine, handle, tier_config, tier_type, _on_evict=None
            )
        if level == 3:
            return bound_tier(
                SQLiteCacheTier,
                self._engine,
                handle,
                tier_config,
                tier_type,
                db_path=Path(config.l3_database_path),
                encryptor=self.encryptor,
            )
        cache_dir = Path(config.l2_cache_dir)
        if config.l2_backend == L2BackendType.JSONL:
            return bound_tier(
                JsonlCacheTier,
                self._engine,
                handle,
                tier_config,
                tier_type,
                cache_dir=cache_dir,
                encryptor=self.encryptor,
                num_shards=16,
            )
        return bound_tier(
            DiskCacheTier,
            self._engine,
            handle,
            tier_config,
            tier_type,
            cache_dir=cache_dir,
            db_path=cache_dir / "l2_cache.db",
            encryptor=self.encryptor,
        )

    # The cache's operations.

    def get(self, key: str) -> CacheEntry | None:
        """The live entry under ``key`` (L1, then L2, then L3), or ``None``."""
        entry: CacheEntry | None = self._engine.get(key, into=self._entry_model)
        if entry is None:
            _log.debug("Cache miss (all tiers): {}", key)
        else:
            _log.debug("Cache hit: {}", key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> bool:
        """Stores ``entry`` under ``key`` in every enabled tier; whether any stored it.

        pw-cache stores an entry under its own key: a different ``key`` is written into the
        stored copy's ``key`` field.
        """
        _log.debug(
            "Cache put: key={}, url={}, source={}{}",
            key,
            _log.shown_url(entry.proxy_url),
            entry.source,
            ", credentials=***" if entry.username or entry.password else "",
        )
        try:
            return bool(self._engine.put(self._entry_model.to_entry(entry, key)))
        except Exception as error:
            _log.warning("Cache put of {} failed: {}", key, error)
            return False

    def delete(self, key: str) -> bool:
        """Removes ``key`` from every tier; whether any held it."""
        _log.debug("Cache delete: {}", key)
        return bool(self._engine.delete(key))

    def clear(self) -> int:
        """Removes every entry; entries removed, summed over the tiers."""
        total = int(self._engine.clear())
        _log.info("Cache cleared: {} entries", total)
        return total

    def invalidate_by_health(self, key: str) -> None:
        """Records a failed health check; at ``failure_threshold`` the entry is removed."""
        self._engine.invalidate_by_health(key)

    def export_to_file(self, filepath: str) -> dict[str, int]:
        """Writes the live entries to ``filepath`` as JSONL (credentials ``"***"``)."""
        report = self._engine.export_report(str(filepath))
        exported, failed = int(report["exported"]), int(report["failed"])
        _log.info("Exported {} entries to {} ({} failed)", exported, filepath, failed)
        return {"exported": exported, "failed": failed}

    def warm_from_file(self, file_path: str, ttl_override: int | None = None) -> dict[str, int]:
        """Loads the proxies of a ``.json``, ``.jsonl`` or ``.csv`` file.

        ``{"loaded", "skipped", "failed"}``; a file that is missing, not JSON, not an array or
        of another format gives ``{"loaded": 0, "skipped": 0, "failed": 1}``.
        """
        errors = native_module_errors()
        try:
            report = self._engine.warm(str(file_path), ttl_override)
        except errors as error:
            _log.warning("Cache warming from {} failed: {}", file_path, error)
            return dict(_WARM_FAILED)
        counts = {name: int(report[name]) for name in ("loaded", "skipped", "failed")}
        _log.info(
            "Cache warming: loaded {}, skipped {}, failed {} from {}",
            counts["loaded"],
            counts["skipped"],
            counts["failed"],
            file_path,
        )
        return counts

    @staticmethod
    def generate_cache_key(proxy_url: str) -> str:
        """The cache key of a proxy URL: 16 hex digits of its SHA-256."""
        return hashlib.sha256(proxy_url.encode("utf-8")).hexdigest()[:16]

    # Statistics.

    def _native_statistics(self) -> dict[str, Any]:
        return dict(self._engine.statistics())

    @property
    def statistics(self) -> CacheStatistics:
        """The engine's statistics now."""
        return CacheStatistics.model_validate(self._native_statistics())

    def get_statistics(self) -> CacheStatistics:
        """A snapshot of the statistics (sizes, hit rates, degradation flags: a level that
        is disabled, switched off through its tier's ``enabled``, or failing is degraded)."""
        return self.statistics

    # Life cycle.

    def _cleanup_expired_entries(self) -> int:
        return int(self._engine.cleanup())

    def flush(self) -> None:
        """Writes L1's access data down to L2/L3."""
        self._engine.flush()

    def close(self) -> None:
        """Stops the cleaner and closes the engine and the tier objects."""
        self.ttl_manager.stop()
        for tier in (self.l1_tier, self.l2_tier, self.l3_tier):
            if isinstance(tier, CacheTier):
                tier.close()
        self._engine.close()

    def __del__(self) -> None:
        ttl_manager = getattr(self, "ttl_manager", None)
        if ttl_manager is not None:
            ttl_manager.stop()


def native_module_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a warm of an unusable file raises (``pw_cache.Error`` and OS errors)."""
    import pw_cache

    base = getattr(pw_cache, "Error", Exception)
    return (base, OSError, ValueError)
