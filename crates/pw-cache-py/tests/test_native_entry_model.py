"""pw_cache.EntryModel: engine entries as pydantic models and back, and Cache.get(into=)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pw_cache
import pytest
from _support import open_cache
from pw_cache.compat.models import CacheEntry, HealthStatus
from pydantic import SecretStr

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)


def sample() -> pw_cache.Entry:
    return pw_cache.Entry(
        "http://198.51.100.9:3128",
        "api",
        ttl_seconds=900,
        username="alice",
        password="s3cret",
        fetch_time=AT,
        access_count=4,
        health_status="unhealthy",
        failure_count=2,
        evicted_from_l1=True,
        last_health_check=AT + timedelta(seconds=5),
        consecutive_health_failures=2,
        recovery_attempt=1,
        next_check_time=AT + timedelta(minutes=5),
        last_health_error="connect timeout",
        total_health_checks=7,
        total_health_check_failures=3,
    )


@pytest.mark.parametrize("validate", [False, True])
def test_both_modes_build_the_model_validate_would(validate: bool) -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus, validate=validate)
    native = sample()
    built = model(native)
    assert type(built) is CacheEntry
    fields = {name: getattr(native, name) for name in CacheEntry.model_fields}
    fields["username"] = SecretStr("alice")
    fields["password"] = SecretStr("s3cret")
    expected = CacheEntry.model_validate(fields)
    assert built == expected
    assert built.model_dump() == expected.model_dump()
    assert built.model_fields_set == expected.model_fields_set
    assert built.health_status is HealthStatus.UNHEALTHY
    assert built.fetch_time == AT and built.fetch_time.tzinfo is not None
    assert isinstance(built.password, SecretStr)
    assert built.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(built)
    assert model.validate is validate


def test_to_entry_round_trips_every_field() -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus)
    native = sample()
    again = model.to_entry(model(native))
    assert again == native
    renamed = model.to_entry(model(native), "0123456789abcdef")
    assert renamed.key == "0123456789abcdef"
    assert renamed.proxy_url == native.proxy_url


def test_an_offset_and_a_naive_datetime_are_kept_as_instants() -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus)
    plus_two = timezone(timedelta(hours=2))
    entry = model(sample()).model_copy(
        update={"fetch_time": AT.astimezone(plus_two), "last_accessed": AT.replace(tzinfo=None)}
    )
    native = model.to_entry(entry)
    assert native.fetch_time == AT
    assert native.fetch_time.utcoffset() == timedelta(hours=2), "its own offset is kept"
    assert native.last_accessed == AT, "a naive datetime is read as UTC"


def test_an_empty_credential_is_stored_as_none() -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus)
    entry = model(sample()).model_copy(update={"password": SecretStr("")})
    assert model.to_entry(entry).password is None
    assert model.to_entry(entry).username is not None


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        (
            "access_count",
            -1,
            pw_cache.InvalidEntryError,
            "access_count must be an int >= 0, not -1",
        ),
        ("access_count", 2**64, pw_cache.InvalidEntryError, "access_count must be an int >= 0"),
        ("health_status", "fine", pw_cache.InvalidEntryError, "health_status"),
        ("ttl_seconds", "soon", TypeError, "ttl_seconds must be an int, not str"),
        ("proxy_url", 7, TypeError, "proxy_url must be a str, not int"),
        ("fetch_time", "2026-01-01", TypeError, "fetch_time must be a datetime.datetime, not str"),
        ("fetch_time", None, TypeError, "fetch_time must be a datetime, not None"),
        ("username", 12, TypeError, "username must be None, a str or a pw_cache.Secret"),
    ],
)
def test_bad_fields_are_named_in_the_error(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus)
    entry = model(sample())
    entry.__dict__[field] = value  # as a model built with model_construct could hold
    with pytest.raises(error, match=message):
        model.to_entry(entry)


def test_a_non_pydantic_class_is_refused() -> None:
    with pytest.raises(TypeError, match="pydantic model class"):
        pw_cache.EntryModel(dict, SecretStr, HealthStatus)


def test_get_into_gives_models_from_the_cache_and_its_tiers(tmp_path: Path) -> None:
    model = pw_cache.EntryModel(CacheEntry, SecretStr, HealthStatus)
    with open_cache(tmp_path) as cache:
        now = datetime.now(timezone.utc)
        native = model.to_entry(
            model(sample()).model_copy(
                update={"fetch_time": now, "expires_at": now + timedelta(hours=1)}
            )
        )
        cache.put(native)
        got = cache.get(native.key, into=model)
        assert isinstance(got, CacheEntry)
        assert got.key == native.key and got.access_count == native.access_count + 1
        assert cache.get("0000000000000000", into=model) is None
        l3 = cache.tier("l3")
        assert l3 is not None
        from_l3 = l3.get(native.key, into=model)
        assert isinstance(from_l3, CacheEntry)
        assert from_l3.username is not None
        assert from_l3.username.get_secret_value() == "alice"
