"""Switching a level off and on at run time (Cache.set_tier_enabled), natively and through
the drop-in (``manager.l2_tier.enabled = False``), and L1's exact capacity (l1_shards=1)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pw_cache
import pytest
from _support import KEY, open_cache
from pw_cache.compat.manager import CacheManager
from pw_cache.compat.models import CacheConfig, CacheEntry, CacheTierConfig
from pydantic import SecretStr


def test_a_level_switched_off_is_skipped_and_reported_degraded(tmp_path: Path) -> None:
    with open_cache(tmp_path) as cache:
        entry = cache.new_entry("http://203.0.113.4:8080", "user")
        cache.put(entry)
        assert cache.set_tier_enabled("l1", False) is True
        assert cache.tier_enabled("l1") is False
        l1 = cache.tier("l1")
        assert l1 is not None and l1.size() == 0
        assert cache.get(entry.key) is not None
        stats = cache.statistics()
        assert stats["l1_degraded"] is True and stats["l1_stats"]["hits"] == 0
        cache.set_tier_enabled("l1", True)
        cache.get(entry.key)
        cache.get(entry.key)
        assert cache.statistics()["l1_stats"]["hits"] == 1
        with pytest.raises(ValueError, match="unknown tier level"):
            cache.set_tier_enabled("l4", False)  # type: ignore[arg-type]
    with pytest.raises(pw_cache.ClosedError):
        cache.set_tier_enabled("l2", False)


def test_l1_shards_one_makes_max_entries_exact(tmp_path: Path) -> None:
    with open_cache(tmp_path / "exact", l1_max_entries=500, l1_shards=1) as exact:
        for i in range(500):
            exact.put(exact.new_entry(f"http://10.9.{i // 256}.{i % 256}:8080"))
        assert exact.statistics()["l1_stats"]["evictions_lru"] == 0
        l1 = exact.tier("l1")
        assert l1 is not None and l1.size() == 500
    with pytest.raises(pw_cache.ConfigError, match="l1_shards"):
        open_cache(tmp_path / "bad", l1_shards=-1)


def test_compat_tier_enabled_switches_the_managers_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROXYWHIRL_CACHE_ENCRYPTION_KEY", KEY)
    manager = CacheManager(
        CacheConfig(
            l1_config=CacheTierConfig(max_entries=10),
            l2_cache_dir=str(tmp_path / "l2"),
            l3_database_path=str(tmp_path / "l3" / "db.sqlite"),
        )
    )
    now = datetime.now(timezone.utc)
    entry = CacheEntry(
        key=CacheManager.generate_cache_key("http://203.0.113.5:8080"),
        proxy_url="http://203.0.113.5:8080",
        username=SecretStr("u"),
        password=SecretStr("p"),
        source="user",
        fetch_time=now,
        last_accessed=now,
        ttl_seconds=3600,
        expires_at=now.replace(year=now.year + 1),
    )
    manager.l2_tier.enabled = False
    assert manager._engine.tier_enabled("l2") is False
    assert manager.get_statistics().l2_degraded is True
    assert manager.put(entry.key, entry) is True
    assert manager.l2_tier.get(entry.key) is None, "L2 was skipped"
    manager.l2_tier.enabled = True
    assert manager.get_statistics().l2_degraded is False
    got = manager.get(entry.key)
    assert got is not None and got.username is not None
    assert got.username.get_secret_value() == "u"
    manager.close()
