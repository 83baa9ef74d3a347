"""Conversions between pw_cache.compat's pydantic models and pw_cache's native objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pw_cache.compat.models import CacheConfig, CacheEntry, CacheTierConfig

KEY_FILE_NAME = "pw-cache.key"

_ENTRY_FIELDS = (
    "key",
    "fetch_time",
    "last_accessed",
    "access_count",
    "expires_at",
    "failure_count",
    "evicted_from_l1",
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
)


def native_module() -> Any:
    """``pw_cache._native`` (imported on first use, so the models work without it)."""
    from pw_cache import _native

    return _native


def _secret_value(value: SecretStr | None) -> str | None:
    # proxywhirl stores an empty credential as NULL and reads it back as None.
    if value is None:
        return None
    plain = value.get_secret_value()
    return plain or None


def to_native(entry: CacheEntry, key: str | None = None) -> Any:
    """A ``pw_cache.Entry`` with every field of ``entry`` (stored under ``key`` if given)."""
    fields: dict[str, Any] = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
    if key is not None:
        fields["key"] = key
    status = entry.health_status
    fields["health_status"] = getattr(status, "value", status)
    return native_module().Entry(
        entry.proxy_url,
        entry.source,
        ttl_seconds=entry.ttl_seconds,
        username=_secret_value(entry.username),
        password=_secret_value(entry.password),
        **fields,
    )


def from_native(native: Any) -> CacheEntry:
    """The :class:`CacheEntry` of a ``pw_cache.Entry``."""
    data = dict(native.to_dict())
    for name in ("username", "password"):
        secret = data.get(name)
        data[name] = None if secret is None else SecretStr(secret.get_secret_value())
    return CacheEntry.model_validate(data)


def config_json(config: CacheConfig, **override: Any) -> str:
    """``config`` as the JSON document ``pw_cache.Cache.from_config_json`` takes.

    The encryption key is written in clear (``model_dump_json`` masks it); ``override``
    replaces top-level fields.
    """
    data = config.model_dump(mode="json")
    data["encryption_key"] = (
        config.encryption_key.get_secret_value() if config.encryption_key else None
    )
    data.update(override)
    for name in ("l1_config", "l2_config", "l3_config"):
        if isinstance(data.get(name), CacheTierConfig):
            data[name] = data[name].model_dump(mode="json")
    return json.dumps(data)


def default_key_file(config: CacheConfig) -> Path:
    """Where the engine keeps its key when none is configured (L2's directory, else L3's)."""
    if config.l2_config.enabled:
        return Path(config.l2_cache_dir) / KEY_FILE_NAME
    return Path(config.l3_database_path).parent / KEY_FILE_NAME
