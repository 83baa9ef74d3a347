"""The native API end to end: Cache, Entry, Secret, on both L2 backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pw_cache
import pytest
from _support import KEY, backend, open_cache
from pw_cache import _native

__all__ = ["backend"]  # the fixture, used by name


def test_put_get_delete_clear(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        entry = cache.new_entry(
            "http://1.2.3.4:8080", "my-list", username="alice", password="s3cr3t"
        )
        assert entry.key == pw_cache.generate_cache_key("http://1.2.3.4:8080")
        assert cache.put(entry) is True
        got = cache.get(entry.key)
        assert got is not None
        assert got.proxy_url == "http://1.2.3.4:8080"
        assert got.source == "my-list"
        assert got.username is not None and got.username.get_secret_value() == "alice"
        assert got.password is not None and got.password.get_secret_value() == "s3cr3t"
        assert got.ttl_seconds == 3600
        assert got.access_count == 1
        assert got.health_status == "unknown"
        assert got.fetch_time.tzinfo is not None
        assert got.expires_at - got.fetch_time == timedelta(seconds=3600)
        assert cache.get("no-such-key") is None
        assert cache.delete(entry.key) is True
        assert cache.delete(entry.key) is False
        assert cache.get(entry.key) is None
        for i in range(5):
            cache.put(cache.new_entry(f"http://10.0.0.{i}:80", "s"))
        assert cache.clear() >= 5
        assert cache.get(pw_cache.generate_cache_key("http://10.0.0.1:80")) is None


def test_reopen_reads_from_disk_with_the_same_key(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        entry = cache.new_entry("socks5://5.6.7.8:1080", "s", password="pw", ttl_seconds=7200)
        cache.put(entry)
    with open_cache(tmp_path, backend) as cache:
        got = cache.get(entry.key)
        assert got is not None
        assert got.ttl_seconds == 7200
        assert got.password is not None and got.password.get_secret_value() == "pw"
        assert got.username is None
        stats = cache.statistics()
        assert stats["l2_stats"]["hits"] + stats["l3_stats"]["hits"] == 1
        assert stats["promotions"] == 1


def test_a_wrong_key_is_refused(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        cache.put(cache.new_entry("http://1.2.3.4:1", "s", password="pw"))
    with pytest.raises(pw_cache.WrongKeyError) as info:
        open_cache(tmp_path, backend, encryption_key=_native.generate_key())
    assert isinstance(info.value, pw_cache.EncryptionKeyError)
    assert isinstance(info.value, pw_cache.Error)


def test_entry_from_python(tmp_path: Path, backend: str) -> None:
    fetched = datetime(2099, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    entry = pw_cache.Entry(
        "http://9.9.9.9:3128",
        "manual",
        ttl_seconds=600,
        username=pw_cache.Secret("bob"),
        password="hunter2",
        key="custom-key",
        fetch_time=fetched,
        health_status="healthy",
        failure_count=2,
        last_health_error="timeout",
        total_health_checks=7,
    )
    assert entry.key == "custom-key"
    assert entry.fetch_time == fetched
    assert entry.last_accessed == fetched
    assert entry.expires_at == fetched + timedelta(seconds=600)
    assert entry.is_healthy and not entry.is_expired
    assert set(entry.to_dict()) == {
        "key", "proxy_url", "username", "password", "source", "fetch_time", "last_accessed",
        "access_count", "ttl_seconds", "expires_at", "health_status", "failure_count",
        "evicted_from_l1", "last_health_check", "consecutive_health_failures",
        "consecutive_health_successes", "recovery_attempt", "next_check_time",
        "last_health_error", "total_health_checks", "total_health_check_failures",
    }  # fmt: skip
    line = json.loads(entry.to_json())
    assert line["username"] == "***" and line["password"] == "***"
    assert list(line) == list(entry.to_dict())
    with open_cache(tmp_path, backend) as cache:
        cache.put(entry)
        got = cache.get("custom-key")
        assert got is not None
        assert got.health_status == "healthy"
        assert got.failure_count == 2
        assert got.last_health_error == "timeout"
        assert got.total_health_checks == 7
        assert got.username == pw_cache.Secret("bob")


def test_other_offsets_are_kept() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    fetched = datetime(2099, 6, 1, 12, 0, tzinfo=tz)
    entry = pw_cache.Entry("http://1.1.1.1:1", "s", fetch_time=fetched)
    assert entry.fetch_time == fetched
    assert entry.fetch_time.utcoffset() == timedelta(hours=5, minutes=30)


def test_health_invalidation(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend, failure_threshold=2) as cache:
        entry = cache.new_entry("http://1.2.3.4:8080", "s")
        cache.put(entry)
        assert cache.invalidate_by_health(entry.key) == {"outcome": "marked", "failure_count": 1}
        assert cache.invalidate_by_health(entry.key) == {"outcome": "evicted", "failure_count": 2}
        assert cache.invalidate_by_health(entry.key) == {
            "outcome": "not_found",
            "failure_count": None,
        }
        assert cache.get(entry.key) is None
        assert cache.statistics()["l1_stats"]["evictions_health"] == 1


def test_statistics_shape(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        stats = cache.statistics()
    assert list(stats) == [
        "l1_stats", "l2_stats", "l3_stats", "promotions", "demotions", "l1_degraded",
        "l2_degraded", "l3_degraded", "overall_hit_rate", "total_size",
    ]  # fmt: skip
    assert list(stats["l1_stats"]) == [
        "hits", "misses", "current_size", "evictions_lru", "evictions_ttl", "evictions_health",
        "evictions_corruption", "hit_rate", "total_evictions",
    ]  # fmt: skip


def test_options(tmp_path: Path) -> None:
    with pw_cache.Cache(
        l2_cache_dir=str(tmp_path / "l2"),
        l3_database_path=tmp_path / "l3.db",
        l1_max_entries=2,
        l2_eviction_policy="lfu",
        l3_config={"enabled": False},
        default_ttl_seconds=120,
        per_source_ttl={"slow": 86400},
        encryption_key=pw_cache.Secret(KEY),
    ) as cache:
        config = cache.config
        assert config["l1_config"]["max_entries"] == 2
        assert config["l2_config"]["eviction_policy"] == "lfu"
        assert config["l3_config"]["enabled"] is False
        assert config["encryption_key"] == "***"
        assert cache.new_entry("http://1.2.3.4:1", "fast").ttl_seconds == 120
        assert cache.new_entry("http://1.2.3.4:1", "slow").ttl_seconds == 86400
        for i in range(5):
            cache.put(cache.new_entry(f"http://10.0.0.{i}:80", "s"))
        assert cache.statistics()["l1_stats"]["current_size"] == 2
        assert cache.statistics()["l3_stats"]["current_size"] == 0
        assert "Cache(" in repr(cache)


def test_from_config_json(tmp_path: Path) -> None:
    doc = {
        "l1_config": {"enabled": True, "max_entries": 10, "eviction_policy": "lru"},
        "l2_config": {"enabled": True, "max_entries": 100, "eviction_policy": "lru"},
        "l3_config": {"enabled": True, "max_entries": None, "eviction_policy": "lru"},
        "l2_backend": "sqlite",
        "default_ttl_seconds": 3600,
        "ttl_cleanup_interval": 60,
        "enable_background_cleanup": False,
        "cleanup_interval_seconds": 60,
        "per_source_ttl": {},
        "l2_cache_dir": str(tmp_path / "l2"),
        "l3_database_path": str(tmp_path / "l3.db"),
        "encryption_key": KEY,
        "health_check_invalidation": True,
        "failure_threshold": 3,
        "enable_statistics": True,
        "statistics_interval": 5,
    }
    with pw_cache.Cache.from_config_json(json.dumps(doc)) as cache:
        assert cache.config["l2_backend"] == "sqlite"
        cache.put(cache.new_entry("http://1.2.3.4:8080", "s"))
    assert (tmp_path / "l2").exists()
    with pytest.raises(pw_cache.ConfigError, match="default_ttl_seconds"):
        pw_cache.Cache.from_config_json(json.dumps({**doc, "default_ttl_seconds": 1}))
    with pytest.raises(pw_cache.ConfigError):
        pw_cache.Cache.from_config_json("{not json")


def test_context_manager_closes(tmp_path: Path, backend: str) -> None:
    cache = open_cache(tmp_path, backend)
    with cache as entered:
        assert entered is cache
        assert not cache.closed
    assert cache.closed
    cache.close()  # closing twice does nothing
    for call in (
        lambda: cache.get("k"),
        lambda: cache.put(pw_cache.Entry("http://1.2.3.4:1", "s")),
        lambda: cache.delete("k"),
        lambda: cache.clear(),
        lambda: cache.statistics(),
        lambda: cache.flush(),
        lambda: cache.warm(tmp_path / "x.json"),
        lambda: cache.export(tmp_path / "x.jsonl"),
        lambda: cache.invalidate_by_health("k"),
        lambda: cache.new_entry("http://1.2.3.4:1", "s"),
    ):
        with pytest.raises(pw_cache.ClosedError, match="closed"):
            call()
    with pytest.raises(pw_cache.ClosedError), cache:
        pass


def test_exception_in_with_block_still_closes(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), open_cache(tmp_path, "jsonl") as cache:
        raise RuntimeError("boom")
    assert cache.closed


def test_export_and_warm_round_trip(tmp_path: Path, backend: str) -> None:
    export = tmp_path / "export.jsonl"
    with open_cache(tmp_path / "a", backend) as cache:
        for i in range(20):
            cache.put(cache.new_entry(f"http://10.1.0.{i}:8080", "src", password=f"pw{i}"))
        assert cache.export(export) == 20
        report = cache.export_report(tmp_path / "export2.jsonl")
        assert report == {"exported": 20, "expired": 0, "failed": 0, "failures": []}
        cache.export(tmp_path / "encrypted.jsonl", encrypted=True)
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == 20
    assert all(line["password"] == "***" for line in lines)
    assert "pw1" not in export.read_text()
    # The masked export warms without credentials; the encrypted one with them (same key).
    with open_cache(tmp_path / "b", backend) as cache:
        warmed = cache.warm(export)
        assert (warmed["loaded"], warmed["skipped"], warmed["failed"]) == (20, 0, 0)
        got = cache.get(pw_cache.generate_cache_key("http://10.1.0.3:8080"))
        assert got is not None and got.password is None and got.source == "src"
    with open_cache(tmp_path / "c", backend) as cache:
        warmed = cache.warm(tmp_path / "encrypted.jsonl", ttl=120)
        assert warmed["loaded"] == 20
        got = cache.get(pw_cache.generate_cache_key("http://10.1.0.3:8080"))
        assert got is not None and got.password is not None
        assert got.password.get_secret_value() == "pw3"
        assert got.ttl_seconds == 120


def test_warm_reports_bad_rows(tmp_path: Path) -> None:
    warm = tmp_path / "warm.json"
    warm.write_text(
        json.dumps(
            [
                {"proxy_url": "http://1.2.3.4:80", "source": "w"},
                {"proxy_url": "not a url"},
                {"no_url": 1},
            ]
        )
    )
    with open_cache(tmp_path, "jsonl") as cache:
        report = cache.warm(warm)
        assert (report["loaded"], report["skipped"], report["failed"]) == (1, 2, 0)
        assert [issue["number"] for issue in report["issues"]] == [2, 3]
        assert all(issue["kind"] == "skipped" for issue in report["issues"])
        with pytest.raises(pw_cache.WarmError):
            cache.warm(tmp_path / "missing.json")
        (tmp_path / "bad.txt").write_text("x")
        with pytest.raises(pw_cache.WarmError):
            cache.warm(tmp_path / "bad.txt")
        with pytest.raises(pw_cache.InvalidEntryError):
            cache.warm(warm, ttl=0)


def test_flush_and_cleanup(tmp_path: Path, backend: str) -> None:
    with open_cache(tmp_path, backend) as cache:
        entry = cache.new_entry("http://1.2.3.4:8080", "s")
        cache.put(entry)
        cache.get(entry.key)
        cache.flush()
        assert cache.cleanup() == 0
        past = datetime.now(timezone.utc) - timedelta(hours=2)
        cache.put(pw_cache.Entry("http://1.2.3.5:8080", "s", ttl_seconds=60, fetch_time=past))
        assert cache.cleanup() >= 1


def test_crypto_helpers() -> None:
    current, previous = _native.generate_key(), _native.generate_key()
    assert len(current) == 44 and current != previous
    token = _native.encrypt([previous], "plain text ✓")
    assert isinstance(token, bytes) and token.startswith(b"gAAAAA")
    assert _native.decrypt([current, previous], token) == "plain text ✓"
    rotated = _native.rotate([current, previous], token)
    assert _native.decrypt([current], rotated) == "plain text ✓"
    with pytest.raises(pw_cache.DecryptionError):
        _native.decrypt([current], token)
    with pytest.raises(pw_cache.DecryptionError):
        _native.decrypt([current], b"not a token")
    with pytest.raises(pw_cache.DecryptionError):
        _native.rotate([_native.generate_key()], rotated)
    with pytest.raises(pw_cache.EncryptionKeyError):
        _native.encrypt([], "x")
    with pytest.raises(pw_cache.EncryptionKeyError) as info:
        _native.encrypt(["not-a-key"], "x")
    assert "not-a-key" not in str(info.value)
