"""Type stubs of the extension module ``pw_cache._native`` (see ``pw_cache`` for the docs)."""

from __future__ import annotations

import os
from datetime import datetime
from types import TracebackType
from typing import Any, TypedDict, final

from typing_extensions import Self

__version__: str

StrPath = str | os.PathLike[str]

class TierStats(TypedDict):
    hits: int
    misses: int
    current_size: int
    evictions_lru: int
    evictions_ttl: int
    evictions_health: int
    evictions_corruption: int
    hit_rate: float
    total_evictions: int

class Statistics(TypedDict):
    l1_stats: TierStats
    l2_stats: TierStats
    l3_stats: TierStats
    promotions: int
    demotions: int
    l1_degraded: bool
    l2_degraded: bool
    l3_degraded: bool
    overall_hit_rate: float
    total_size: int

class HealthOutcome(TypedDict):
    outcome: str
    failure_count: int | None

class WarmIssue(TypedDict, total=False):
    location: str
    unit: str
    number: int
    line: int
    kind: str
    reason: str

class WarmReport(TypedDict):
    loaded: int
    skipped: int
    failed: int
    replaced: int
    issues_omitted: int
    issues: list[WarmIssue]

class ExportReport(TypedDict):
    exported: int
    expired: int
    failed: int
    failures: list[tuple[str, str]]

@final
class Secret:
    """A credential: ``str``/``repr`` show ``**********``; ``get_secret_value()`` returns it."""

    def __init__(self, value: str) -> None: ...
    def get_secret_value(self) -> str: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

Credential = str | Secret | None

@final
class Entry:
    """One cached proxy: the 21 fields of proxywhirl's ``CacheEntry``, read-only."""

    def __init__(
        self,
        proxy_url: str,
        source: str = "user",
        *,
        ttl_seconds: int = 3600,
        username: Credential = None,
        password: Credential = None,
        key: str | None = None,
        fetch_time: datetime | None = None,
        last_accessed: datetime | None = None,
        access_count: int = 0,
        expires_at: datetime | None = None,
        health_status: str = "unknown",
        failure_count: int = 0,
        evicted_from_l1: bool = False,
        last_health_check: datetime | None = None,
        consecutive_health_failures: int = 0,
        consecutive_health_successes: int = 0,
        recovery_attempt: int = 0,
        next_check_time: datetime | None = None,
        last_health_error: str | None = None,
        total_health_checks: int = 0,
        total_health_check_failures: int = 0,
    ) -> None: ...
    @property
    def key(self) -> str: ...
    @property
    def proxy_url(self) -> str: ...
    @property
    def username(self) -> Secret | None: ...
    @property
    def password(self) -> Secret | None: ...
    @property
    def source(self) -> str: ...
    @property
    def fetch_time(self) -> datetime: ...
    @property
    def last_accessed(self) -> datetime: ...
    @property
    def access_count(self) -> int: ...
    @property
    def ttl_seconds(self) -> int: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def health_status(self) -> str: ...
    @property
    def failure_count(self) -> int: ...
    @property
    def evicted_from_l1(self) -> bool: ...
    @property
    def last_health_check(self) -> datetime | None: ...
    @property
    def consecutive_health_failures(self) -> int: ...
    @property
    def consecutive_health_successes(self) -> int: ...
    @property
    def recovery_attempt(self) -> int: ...
    @property
    def next_check_time(self) -> datetime | None: ...
    @property
    def last_health_error(self) -> str | None: ...
    @property
    def total_health_checks(self) -> int: ...
    @property
    def total_health_check_failures(self) -> int: ...
    @property
    def is_expired(self) -> bool: ...
    @property
    def is_healthy(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...

@final
class Cache:
    """The three-level cache; thread-safe; a context manager that closes it."""

    def __init__(self, **options: Any) -> None: ...
    @classmethod
    def from_config_json(cls, json: str, *, key_file: StrPath | None = None) -> Cache: ...
    def get(self, key: str) -> Entry | None: ...
    def put(self, entry: Entry) -> bool: ...
    def new_entry(
        self,
        proxy_url: str,
        source: str = "user",
        *,
        username: Credential = None,
        password: Credential = None,
        ttl_seconds: int | None = None,
        key: str | None = None,
    ) -> Entry: ...
    def delete(self, key: str) -> bool: ...
    def clear(self) -> int: ...
    def invalidate_by_health(self, key: str) -> HealthOutcome: ...
    def statistics(self) -> Statistics: ...
    def cleanup(self) -> int: ...
    def export(self, path: StrPath, *, encrypted: bool = False) -> int: ...
    def export_report(self, path: StrPath, *, encrypted: bool = False) -> ExportReport: ...
    def warm(self, path: StrPath, ttl: int | None = None) -> WarmReport: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def config(self) -> dict[str, Any]: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

def generate_cache_key(proxy_url: str) -> str: ...
def generate_key() -> str: ...
def encrypt(keys: list[str], plaintext: str) -> bytes: ...
def decrypt(keys: list[str], token: bytes) -> str: ...
def rotate(keys: list[str], token: bytes) -> bytes: ...
