"""pw_cache.compat.models: proxywhirl 0.3.3's cache models, same fields, dumps and errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pw_cache.compat.models import (
    CacheConfig,
    CacheEntry,
    CacheStatistics,
    CacheTierConfig,
    L2BackendType,
    TierStatistics,
)
from pydantic import SecretStr, ValidationError


def entry(**fields: object) -> CacheEntry:
    now = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    values: dict[str, object] = {
        "key": "k",
        "proxy_url": "http://1.2.3.4:8080",
        "source": "test",
        "fetch_time": now,
        "last_accessed": now,
        "ttl_seconds": 60,
        "expires_at": now + timedelta(seconds=60),
    }
    values.update(fields)
    return CacheEntry(**values)  # type: ignore[arg-type]


def test_json_dump_masks_credentials_and_writes_isoformat_times() -> None:
    dumped = entry(username=SecretStr("alice")).model_dump(mode="json")
    assert dumped["username"] == "***"
    assert dumped["password"] is None
    assert dumped["fetch_time"] == "2025-01-02T03:04:05.678901+00:00"
    assert dumped["health_status"] == "unknown"
    assert len(dumped) == 21


def test_python_dump_keeps_secrets() -> None:
    dumped = entry(password=SecretStr("pw")).model_dump()
    assert dumped["password"].get_secret_value() == "pw"


def test_expiry_and_health() -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert entry(expires_at=past).is_expired
    assert not entry(expires_at=past + timedelta(hours=1)).is_expired
    assert entry(health_status="healthy").is_healthy


def test_validation_messages() -> None:
    with pytest.raises(ValidationError, match=r"Invalid eviction policy: mru\. Must be one of"):
        CacheTierConfig(eviction_policy="mru")
    with pytest.raises(ValidationError, match="greater than or equal to 60"):
        CacheConfig(default_ttl_seconds=59)
    with pytest.raises(ValidationError):
        entry(ttl_seconds=-1)


def test_config_defaults_and_masked_key() -> None:
    config = CacheConfig(encryption_key="secret")  # type: ignore[arg-type]
    dumped = config.model_dump(mode="json")
    assert dumped["encryption_key"] == "***"
    assert dumped["l1_config"] == {"enabled": True, "max_entries": 1000, "eviction_policy": "lru"}
    assert dumped["l2_config"]["max_entries"] == 5000
    assert dumped["l3_config"]["max_entries"] is None
    assert config.l2_backend is L2BackendType.JSONL
    assert CacheConfig(ttl_seconds=5).default_ttl_seconds == 3600  # unknown kwargs ignored


def test_statistics_computed_fields() -> None:
    stats = CacheStatistics(l1_stats=TierStatistics(hits=3, misses=1, current_size=2))
    stats.l2_stats.misses = 1
    dumped = stats.model_dump()
    assert dumped["l1_stats"]["hit_rate"] == 0.75
    assert dumped["overall_hit_rate"] == 0.75
    assert dumped["total_size"] == 2
    assert stats.to_metrics_dict()["cache.l1.size"] == 2.0
