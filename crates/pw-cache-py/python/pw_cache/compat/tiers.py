"""proxywhirl 0.3.3's cache tiers (``proxywhirl.cache.tiers``) on pw-cache's engine.

Each tier object is a ``pw_cache.Cache`` with only that tier enabled: ``MemoryCacheTier`` an
L1, ``JsonlCacheTier`` a JSONL L2, ``DiskCacheTier`` a SQLite L2 (``l2_cache.db``),
``SQLiteCacheTier`` an L3. They read and write the reference's files, so a tier object and a
``CacheManager`` (or proxywhirl itself) can use the same directory at once.

The tiers of a ``CacheManager`` (``manager.l1_tier`` ...) are instead bound to one level of the
manager's own engine (a ``pw_cache.Tier`` handle, :func:`bound_tier`): their operations touch
that level only, with no promotion, write-through or statistics, as in the reference.

What differs from the reference: a put stores the entry under the key given (the entry's own
``key`` field is rewritten to it; the reference kept two keys for one entry); ``keys()`` of a
stand-alone tier object reads an export of the tier; the private attributes (``_cache``,
``_index``, ``_read_shard`` ...) do not exist.
"""

from __future__ import annotations

import tempfile
from abc import ABC
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pw_cache.compat import _log
from pw_cache.compat._convert import config_json, entry_model, native_module, to_native
from pw_cache.compat.crypto import CredentialEncryptor
from pw_cache.compat.models import CacheConfig, CacheEntry, CacheTierConfig, L2BackendType

__all__ = [
    "CacheTier",
    "DiskCacheTier",
    "JsonlCacheTier",
    "MemoryCacheTier",
    "SQLiteCacheTier",
    "TierType",
    "bound_tier",
]

_OFF = CacheTierConfig(enabled=False)


class TierType(str, Enum):
    """Which tier a tier object is."""

    L1_MEMORY = "l1_memory"
    L2_FILE = "l2_file"
    L3_SQLITE = "l3_sqlite"


class CacheTier(ABC):
    """A tier: an engine with that tier only, plus proxywhirl's failure bookkeeping.

    ``failure_count``/``enabled`` follow proxywhirl: three failures (``handle_failure``)
    disable the tier, ``reset_failures`` enables it again. Operations that fail in the engine
    count as failures and return the reference's neutral value (``None``, ``False``, ``0``).
    A manager's tier (``manager.l2_tier``) passes ``enabled`` to the manager's engine, which
    then skips (or uses again) that level, as proxywhirl's manager does.
    """

    #: Which of the engine's statistics blocks is this tier's.
    _stats_name = "l1_stats"
    #: The disk tiers' directory and encryptor (set by their constructors).
    cache_dir: Path
    encryptor: CredentialEncryptor

    def __init__(self, config: CacheTierConfig, tier_type: TierType) -> None:
        self.config = config
        self.tier_type = tier_type
        #: The manager's engine when this is one of its levels (``enabled`` switches it there).
        self._manager_engine: Any = None
        self._enabled = config.enabled
        self.failure_count = 0
        self.failure_threshold = 3
        self._engine: Any = None
        #: A ``pw_cache.Tier`` handle when bound to one level of a manager's engine.
        self._tier: Any = None

    def _open_l2(self, config: CacheTierConfig, backend: L2BackendType) -> None:
        """Opens the engine on this tier's ``cache_dir`` as an L2 of ``backend`` alone."""
        self._open(
            CacheConfig(
                l1_config=_OFF,
                l2_config=config.model_copy(update={"enabled": True}),
                l3_config=_OFF,
                l2_backend=backend,
                l2_cache_dir=str(self.cache_dir),
                encryption_key=SecretStr(self.encryptor.key.decode("ascii")),
            )
        )

    def _open(self, cache_config: CacheConfig, key_file: Path | None = None) -> None:
        native = native_module()
        document = config_json(cache_config)
        if key_file is None:
            self._engine = native.Cache.from_config_json(document, l1_shards=1)
        else:
            self._engine = native.Cache.from_config_json(
                document, key_file=str(key_file), l1_shards=1
            )

    def _failed(self, what: str, error: Exception) -> None:
        _log.warning("{} {} failed: {}", self.tier_type.value, what, error)
        self.handle_failure(error)

    def get(self, key: str) -> CacheEntry | None:
        """The live entry under ``key``, or ``None``."""
        try:
            target = self._engine if self._tier is None else self._tier
            entry: CacheEntry | None = target.get(key, into=entry_model())
        except Exception as error:
            self._failed("get", error)
            return None
        return entry

    def put(self, key: str, entry: CacheEntry) -> bool:
        """Stores ``entry`` under ``key``; whether it was stored."""
        try:
            if self._tier is not None:
                self._tier.put(to_native(entry, key))
                stored = True
            else:
                stored = bool(self._engine.put(to_native(entry, key)))
        except Exception as error:
            self._failed("put", error)
            return False
        return stored

    def delete(self, key: str) -> bool:
        """Removes ``key``; whether it was there."""
        try:
            target = self._engine if self._tier is None else self._tier
            return bool(target.delete(key))
        except Exception as error:
            self._failed("delete", error)
            return False

    def clear(self) -> int:
        """Removes every entry; how many there were."""
        try:
            target = self._engine if self._tier is None else self._tier
            return int(target.clear())
        except Exception as error:
            self._failed("clear", error)
            return 0

    def size(self) -> int:
        """How many entries the tier holds."""
        try:
            if self._tier is not None:
                return int(self._tier.size())
            return int(self._engine.statistics()[self._stats_name]["current_size"])
        except Exception as error:
            self._failed("size", error)
            return 0

    def keys(self) -> list[str]:
        """The keys the tier holds (of a stand-alone tier object: its live entries, read from
        an export of the tier)."""
        try:
            if self._tier is not None:
                return [str(key) for key in self._tier.keys()]
            with tempfile.TemporaryDirectory(prefix="pw-cache-keys-") as directory:
                path = Path(directory) / "export.jsonl"
                self._engine.export(str(path))
                import json

                with path.open(encoding="utf-8") as lines:
                    return [json.loads(line)["key"] for line in lines if line.strip()]
        except Exception as error:
            self._failed("keys", error)
            return []

    def cleanup_expired(self) -> int:
        """Removes the expired entries; how many."""
        try:
            if self._tier is not None:
                return self._cleanup_bound()
            return int(self._engine.cleanup())
        except Exception as error:
            self._failed("cleanup_expired", error)
            return 0

    def _cleanup_bound(self) -> int:
        removed = 0
        for key in self._tier.keys():
            native = self._tier.get(key)
            if native is not None and native.is_expired and self._tier.delete(key):
                removed += 1
        return removed

    def __contains__(self, key: str) -> bool:
        if self._tier is not None:
            try:
                return bool(self._tier.contains(key))
            except Exception as error:
                self._failed("contains", error)
                return False
        return key in self.keys()

    @property
    def enabled(self) -> bool:
        """Whether the tier is used; setting it switches a manager's level off or on."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        engine = self._manager_engine
        if engine is not None and self._tier is not None:
            engine.set_tier_enabled(self._tier.level, self._enabled)

    def handle_failure(self, error: Exception) -> None:
        """Counts a failure; the third in a row disables the tier."""
        self.failure_count += 1
        if self.failure_count >= self.failure_threshold:
            # Bookkeeping only: the engine degrades a failing level itself and probes it back.
            self._enabled = False

    def reset_failures(self) -> None:
        """Forgets the failures and enables the tier again."""
        self.failure_count = 0
        self._enabled = True

    def close(self) -> None:
        """Closes the tier's engine (flushing what it batches); a bound tier's engine is its
        manager's, closed by the manager."""
        if self._engine is not None:
            self._engine.close()


class MemoryCacheTier(CacheTier):
    """L1: an in-memory LRU bounded by ``config.max_entries``."""

    def __init__(
        self,
        config: CacheTierConfig,
        tier_type: TierType = TierType.L1_MEMORY,
        on_evict: Any = None,
    ) -> None:
        super().__init__(config, tier_type)
        self._on_evict = on_evict  # accepted for the signature; the engine evicts itself
        memory = config.model_copy(update={"enabled": True})
        self._open(CacheConfig(l1_config=memory, l2_config=_OFF, l3_config=_OFF))


class JsonlCacheTier(CacheTier):
    """L2 as proxywhirl's 16 JSONL shards (``shard_00.jsonl`` …) in ``cache_dir``."""

    _stats_name = "l2_stats"

    def __init__(
        self,
        config: CacheTierConfig,
        tier_type: TierType,
        cache_dir: Path,
        encryptor: CredentialEncryptor | None = None,
        num_shards: int = 16,
    ) -> None:
        super().__init__(config, tier_type)
        if num_shards != 16:
            raise ValueError("pw-cache's JSONL tier has 16 shards (proxywhirl's layout)")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.encryptor = encryptor or CredentialEncryptor()
        self.num_shards = num_shards
        self._open_l2(config, L2BackendType.JSONL)


class DiskCacheTier(CacheTier):
    """L2 as one SQLite database, ``l2_cache.db`` in ``cache_dir``."""

    _stats_name = "l2_stats"

    def __init__(
        self,
        config: CacheTierConfig,
        tier_type: TierType,
        cache_dir: Path,
        encryptor: CredentialEncryptor | None = None,
    ) -> None:
        super().__init__(config, tier_type)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.encryptor = encryptor or CredentialEncryptor()
        self.db_path = self.cache_dir / "l2_cache.db"
        self._open_l2(config, L2BackendType.SQLITE)

    def migrate_from_jsonl(self, jsonl_dir: Path | None = None) -> int:
        """Copies the live entries of JSONL shards (``jsonl_dir``, else ``cache_dir``) here.

        The shards are read by pw-cache's JSONL tier (damaged lines skipped); returns how many
        entries were stored.
        """
        source = JsonlCacheTier(
            self.config.model_copy(update={"max_entries": None}),
            TierType.L2_FILE,
            Path(jsonl_dir) if jsonl_dir is not None else self.cache_dir,
            self.encryptor,
        )
        migrated = 0
        try:
            for key in source.keys():
                entry = source.get(key)
                if entry is not None and self.put(key, entry):
                    migrated += 1
        finally:
            source.close()
        return migrated


class SQLiteCacheTier(CacheTier):
    """L3: the SQLite database at ``db_path`` (``cache_entries`` and ``health_history``)."""

    _stats_name = "l3_stats"

    def __init__(
        self,
        config: CacheTierConfig,
        tier_type: TierType,
        db_path: Path,
        encryptor: CredentialEncryptor | None = None,
    ) -> None:
        super().__init__(config, tier_type)
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.encryptor = encryptor or CredentialEncryptor()
        disk = config.model_copy(update={"enabled": True})
        self._open(
            CacheConfig(
                l1_config=_OFF,
                l2_config=_OFF,
                l3_config=disk,
                l3_database_path=str(self.db_path),
                encryption_key=SecretStr(self.encryptor.key.decode("ascii")),
            )
        )


def bound_tier(
    cls: type[CacheTier],
    engine: Any,
    handle: Any,
    config: CacheTierConfig,
    tier_type: TierType,
    **attributes: Any,
) -> CacheTier:
    """A ``cls`` tier object on ``handle`` (a ``pw_cache.Tier``: one level of the manager's
    ``engine``) rather than on an engine of its own; ``attributes`` are set on it
    (``cache_dir``, ``db_path``, ``encryptor`` ...)."""
    tier = cls.__new__(cls)
    CacheTier.__init__(tier, config, tier_type)
    tier._tier = handle
    tier._manager_engine = engine
    for name, value in attributes.items():
        setattr(tier, name, value)
    return tier
