"""Conversions between pw_cache.compat's pydantic models and pw_cache's native objects."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pw_cache.compat import _log
from pw_cache.compat.models import CacheConfig, CacheEntry, CacheTierConfig, HealthStatus

KEY_FILE_NAME = "pw-cache.key"


def native_module() -> Any:
    """``pw_cache._native`` (imported on first use, so the models work without it)."""
    from pw_cache import _native

    return _native


_ENTRY_MODEL: Any = None


def entry_model() -> Any:
    """The ``pw_cache.EntryModel`` that turns engine entries into :class:`CacheEntry` and back.

    It constructs instances as pydantic's ``model_construct`` does (the engine's values are
    already valid), which costs a fraction of validating them. Made once, and checked once: if a
    sample built that way differs in any way from the validated one (a pydantic release that
    changes how models are stored), the validating mode is used instead.
    """
    global _ENTRY_MODEL
    if _ENTRY_MODEL is None:
        native = native_module()
        fast = native.EntryModel(CacheEntry, SecretStr, HealthStatus)
        if _builds_as_validated(fast):
            _ENTRY_MODEL = fast
        else:
            _log.warning("pw_cache.compat: constructed entries differ; validating them instead")
            _ENTRY_MODEL = native.EntryModel(CacheEntry, SecretStr, HealthStatus, validate=True)
    return _ENTRY_MODEL


def _builds_as_validated(model: Any) -> bool:
    """Whether ``model`` builds a sample entry exactly as ``CacheEntry.model_validate`` does."""
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    sample = native_module().Entry(
        "http://198.51.100.7:3128",
        "fetched",
        ttl_seconds=600,
        username="user",
        password="secret",
        fetch_time=at,
        access_count=2,
        health_status="degraded",
        failure_count=1,
        last_health_check=at,
        next_check_time=at,
        last_health_error="timeout",
        total_health_checks=3,
    )
    fields = {name: getattr(sample, name) for name in CacheEntry.model_fields}
    for name in ("username", "password"):
        fields[name] = SecretStr(fields[name].get_secret_value())
    expected = CacheEntry.model_validate(fields)
    built = model(sample)
    return bool(
        type(built) is CacheEntry
        and built == expected
        and built.model_fields_set == expected.model_fields_set
        and built.model_dump() == expected.model_dump()
        and built.model_dump_json() == expected.model_dump_json()
        and built.model_copy(update={"access_count": 3}).access_count == 3
    )


def to_native(entry: CacheEntry, key: str | None = None) -> Any:
    """A ``pw_cache.Entry`` with every field of ``entry`` (stored under ``key`` if given).

    An empty credential is none, as proxywhirl stores it as NULL and reads it back as None.
    """
    return entry_model().to_entry(entry, key)


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
