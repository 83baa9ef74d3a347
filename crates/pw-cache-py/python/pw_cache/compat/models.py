"""proxywhirl 0.3.3's cache models (``proxywhirl.cache.models``), as pydantic v2 models.

Same names, fields, defaults, bounds, computed fields and validation messages as the
reference, so code and tests written against it keep working. Credentials are
:class:`pydantic.SecretStr`; in JSON mode they are dumped as ``"***"`` and datetimes
with :meth:`datetime.isoformat`, as the reference's ``json_encoders`` did.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    computed_field,
    field_serializer,
    field_validator,
)


def _health_status() -> type[Enum]:
    """proxywhirl's own ``HealthStatus`` when proxywhirl is in use, else an equal enum.

    The reference re-exports ``proxywhirl.models.HealthStatus``; code comparing members by
    identity needs that very class. It is imported only when the alias is installed or
    proxywhirl's models are already loaded: importing ``proxywhirl`` otherwise would load
    proxywhirl's own cache package.
    """
    from pw_cache.compat import installed

    if installed() or "proxywhirl.models" in sys.modules:
        try:
            from proxywhirl.models import HealthStatus as upstream
        except ImportError:
            pass
        else:
            return upstream

    class HealthStatus(str, Enum):
        """Proxy health status (the values of proxywhirl's ``HealthStatus``)."""

        UNKNOWN = "unknown"
        HEALTHY = "healthy"
        DEGRADED = "degraded"
        UNHEALTHY = "unhealthy"
        DEAD = "dead"

    return HealthStatus


HealthStatus: Any = _health_status()

__all__ = [
    "CacheConfig",
    "CacheEntry",
    "CacheStatistics",
    "CacheTierConfig",
    "CacheTierType",
    "HealthStatus",
    "L2BackendType",
    "TierStatistics",
]

_EVICTION_POLICIES = ["lru", "lfu", "fifo"]


class CacheTierType(str, Enum):
    """The three tiers of the cache."""

    L1 = "l1"
    L2 = "l2"
    L3 = "l3"


class L2BackendType(str, Enum):
    """Storage of the L2 tier: JSONL shard files or one SQLite database."""

    JSONL = "jsonl"
    SQLITE = "sqlite"


def _mask_secret(value: SecretStr | None) -> str | None:
    return None if value is None else "***"


class CacheEntry(BaseModel):
    """One cached proxy: its URL, credentials, TTL, health and use."""

    key: str = Field(..., description="Cache key (16 hex digits of the URL's SHA-256)")
    proxy_url: str = Field(..., description="Proxy URL, scheme://host:port")
    username: SecretStr | None = Field(None, description="Proxy user name")
    password: SecretStr | None = Field(None, description="Proxy password")
    source: str = Field(..., description="Where the proxy came from")
    fetch_time: datetime = Field(..., description="When the proxy was fetched")
    last_accessed: datetime = Field(..., description="Last use through the cache")
    access_count: int = Field(default=0, description="Uses through the cache")
    ttl_seconds: int = Field(..., ge=0, description="Time to live, seconds")
    expires_at: datetime = Field(..., description="When the entry expires")
    health_status: HealthStatus = Field(default=HealthStatus.UNKNOWN)
    failure_count: int = Field(default=0, ge=0, description="Health failures so far")
    evicted_from_l1: bool = Field(default=False, description="L1 evicted this entry")
    last_health_check: datetime | None = Field(None, description="Last health check")
    consecutive_health_failures: int = Field(default=0, ge=0)
    consecutive_health_successes: int = Field(default=0, ge=0)
    recovery_attempt: int = Field(default=0, ge=0)
    next_check_time: datetime | None = Field(None, description="Next planned health check")
    last_health_error: str | None = Field(None, description="Last health check's error")
    total_health_checks: int = Field(default=0, ge=0)
    total_health_check_failures: int = Field(default=0, ge=0)

    @field_serializer("username", "password", when_used="json")
    def _serialize_secret(self, value: SecretStr | None) -> str | None:
        return _mask_secret(value)

    @field_serializer(
        "fetch_time",
        "last_accessed",
        "expires_at",
        "last_health_check",
        "next_check_time",
        when_used="json",
    )
    def _serialize_time(self, value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    @property
    def is_expired(self) -> bool:
        """Whether the entry's TTL has run out (``now >= expires_at``)."""
        return datetime.now(timezone.utc) >= self.expires_at

    @property
    def is_healthy(self) -> bool:
        """Whether the proxy's health status is ``healthy``."""
        return bool(self.health_status == HealthStatus.HEALTHY)


class CacheTierConfig(BaseModel):
    """Settings of one tier: on or off, its capacity and its eviction policy."""

    enabled: bool = Field(default=True, description="Whether the tier is used")
    max_entries: int | None = Field(None, description="Capacity (None: unbounded)")
    eviction_policy: str = Field(default="lru", description="lru, lfu or fifo")

    @field_validator("eviction_policy")
    @classmethod
    def validate_policy(cls, value: str) -> str:
        """Accept only the policies the cache knows."""
        if value not in _EVICTION_POLICIES:
            raise ValueError(
                f"Invalid eviction policy: {value}. Must be one of {_EVICTION_POLICIES}"
            )
        return value


class CacheConfig(BaseModel):
    """The whole cache's settings: tiers, TTLs, paths, key and health policy."""

    l1_config: CacheTierConfig = Field(
        default_factory=lambda: CacheTierConfig(max_entries=1000),
        description="L1 (memory)",
    )
    l2_config: CacheTierConfig = Field(
        default_factory=lambda: CacheTierConfig(max_entries=5000),
        description="L2 (disk: JSONL shards or SQLite, see l2_backend)",
    )
    l2_backend: L2BackendType = Field(default=L2BackendType.JSONL, description="L2 storage")
    l3_config: CacheTierConfig = Field(
        default_factory=lambda: CacheTierConfig(max_entries=None),
        description="L3 (SQLite)",
    )
    default_ttl_seconds: int = Field(default=3600, ge=60, description="Default TTL, seconds")
    ttl_cleanup_interval: int = Field(default=60, ge=10, description="Cleanup interval")
    enable_background_cleanup: bool = Field(default=False, description="Run the TTL cleaner")
    cleanup_interval_seconds: int = Field(default=60, ge=5, description="Cleaner interval")
    per_source_ttl: dict[str, int] = Field(default_factory=dict, description="TTL per source")
    l2_cache_dir: str = Field(default=".cache/proxies", description="L2 directory")
    l3_database_path: str = Field(default=".cache/db/proxywhirl.db", description="L3 database")
    encryption_key: SecretStr | None = Field(
        None, description="Fernet key (else PROXYWHIRL_CACHE_ENCRYPTION_KEY)"
    )
    health_check_invalidation: bool = Field(default=True, description="Evict failing proxies")
    failure_threshold: int = Field(default=3, ge=1, description="Failures before eviction")
    enable_statistics: bool = Field(default=True, description="Keep statistics")
    statistics_interval: int = Field(default=5, ge=1, description="Statistics interval")

    @field_serializer("encryption_key", when_used="json")
    def _serialize_key(self, value: SecretStr | None) -> str | None:
        return _mask_secret(value)


class TierStatistics(BaseModel):
    """Counters of one tier, with its hit rate and total evictions."""

    hits: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)
    current_size: int = Field(default=0, ge=0)
    evictions_lru: int = Field(default=0, ge=0)
    evictions_ttl: int = Field(default=0, ge=0)
    evictions_health: int = Field(default=0, ge=0)
    evictions_corruption: int = Field(default=0, ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_evictions(self) -> int:
        """Evictions for every reason."""
        return (
            self.evictions_lru
            + self.evictions_ttl
            + self.evictions_health
            + self.evictions_corruption
        )


class CacheStatistics(BaseModel):
    """Statistics of the three tiers, promotions, demotions and degradation flags."""

    l1_stats: TierStatistics = Field(default_factory=TierStatistics)
    l2_stats: TierStatistics = Field(default_factory=TierStatistics)
    l3_stats: TierStatistics = Field(default_factory=TierStatistics)
    promotions: int = Field(default=0, ge=0, description="Copies moved up a tier")
    demotions: int = Field(default=0, ge=0, description="Entries L1 evicted")
    l1_degraded: bool = Field(default=False, description="L1 unavailable")
    l2_degraded: bool = Field(default=False, description="L2 unavailable")
    l3_degraded: bool = Field(default=False, description="L3 unavailable")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def overall_hit_rate(self) -> float:
        """Hits of all tiers over lookups; a lookup's misses count once (the largest)."""
        hits = self.l1_stats.hits + self.l2_stats.hits + self.l3_stats.hits
        misses = max(self.l1_stats.misses, self.l2_stats.misses, self.l3_stats.misses)
        lookups = hits + misses
        return hits / lookups if lookups else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_size(self) -> int:
        """Entries held by the three tiers together."""
        return self.l1_stats.current_size + self.l2_stats.current_size + self.l3_stats.current_size

    def to_metrics_dict(self) -> dict[str, float]:
        """A flat ``{"cache.…": value}`` mapping for monitoring."""
        return {
            "cache.l1.hit_rate": self.l1_stats.hit_rate,
            "cache.l2.hit_rate": self.l2_stats.hit_rate,
            "cache.l3.hit_rate": self.l3_stats.hit_rate,
            "cache.overall.hit_rate": self.overall_hit_rate,
            "cache.total_size": float(self.total_size),
            "cache.promotions": float(self.promotions),
            "cache.demotions": float(self.demotions),
            "cache.l1.size": float(self.l1_stats.current_size),
            "cache.l2.size": float(self.l2_stats.current_size),
            "cache.l3.size": float(self.l3_stats.current_size),
        }
