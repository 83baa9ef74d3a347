"""Cache.tier: one level used on its own (no promotion, no write-through, no statistics)."""

from __future__ import annotations

from pathlib import Path

import pw_cache
import pytest
from _support import backend, open_cache

__all__ = ["backend"]  # the fixture, used by name


def tiers(cache: pw_cache.Cache) -> tuple[pw_cache.Tier, pw_cache.Tier, pw_cache.Tier]:
    l1, l2, l3 = cache.tier("l1"), cache.tier("l2"), cache.tier("l3")
    assert l1 is not None and l2 is not None and l3 is not None
    return l1, l2, l3


def test_put_into_l1_alone_is_not_in_l2(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        l1, l2, l3 = tiers(cache)
        assert (l1.level, l2.level, l3.level) == ("l1", "l2", "l3")
        entry = cache.new_entry("http://1.2.3.4:8080", username="alice", password="s3cr3t")
        l1.put(entry)
        got = l1.get(entry.key)
        assert got is not None and got.proxy_url == "http://1.2.3.4:8080"
        assert got.password is not None and got.password.get_secret_value() == "s3cr3t"
        assert l1.contains(entry.key) and l1.keys() == [entry.key] and l1.size() == 1
        assert l2.get(entry.key) is None and not l2.contains(entry.key) and l2.size() == 0
        assert l3.get(entry.key) is None and l3.keys() == []
        # No statistics: a direct get is no hit of the cache.
        assert cache.statistics()["l1_stats"]["hits"] == 0
        assert l1.delete(entry.key) is True and l1.delete(entry.key) is False
        assert l1.consecutive_failures == 0


def test_put_into_l3_alone_is_found_by_cache_get_then_in_l1(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        l1, l2, l3 = tiers(cache)
        entry = cache.new_entry("http://5.6.7.8:3128", username="bob", password="pw")
        l3.put(entry)
        assert l1.get(entry.key) is None and l2.get(entry.key) is None
        got = cache.get(entry.key)
        assert got is not None and got.key == entry.key
        promoted = l1.get(entry.key)
        assert promoted is not None and promoted.proxy_url == "http://5.6.7.8:3128"
        assert promoted.username is not None and promoted.username.get_secret_value() == "bob"


def test_clear_is_one_level(tmp_path: Path) -> None:
    with open_cache(tmp_path) as cache:
        l1, l2, l3 = tiers(cache)
        for n in range(3):
            cache.put(cache.new_entry(f"http://10.0.0.{n}:80"))
        assert sorted(l2.keys()) == sorted(l3.keys()) and l2.size() == 3
        assert l1.clear() == 3 and l1.size() == 0
        assert l2.size() == 3 and l3.size() == 3


def test_disabled_level_is_none_and_bad_level_raises(tmp_path: Path) -> None:
    with open_cache(tmp_path, l3_enabled=False) as cache:
        assert cache.tier("l3") is None
        with pytest.raises(ValueError, match="tier level"):
            cache.tier("l4")  # type: ignore[arg-type]


def test_closed_cache_raises(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    l2 = cache.tier("l2")
    assert l2 is not None
    cache.close()
    with pytest.raises(pw_cache.ClosedError):
        l2.get("k")
    with pytest.raises(pw_cache.ClosedError):
        cache.tier("l1")
