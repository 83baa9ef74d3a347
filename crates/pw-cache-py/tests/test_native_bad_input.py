"""Bad input never reaches Rust as a panic: wrong types, None, huge or non-UTF-8 strings, out
of range numbers, a closed cache are Python exceptions with a message. And secrets never show
in a repr, a str or an exception."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pw_cache
import pytest
from pw_cache import _native

KEY = _native.generate_key()
# Untyped handles, for calls made with wrong types on purpose.
Entry: Any = pw_cache.Entry
Secret: Any = pw_cache.Secret
native: Any = _native
HUGE = "a" * (10 * 1024 * 1024)
SURROGATE = "\ud800"


def outcome(call: Callable[[], Any]) -> Any:
    """The call's result or exception, failing the test on a Rust panic (pyo3 raises
    PanicException, a BaseException, for one)."""
    try:
        return call()
    except Exception as e:  # a Python exception is fine: it has a message
        assert str(e) or isinstance(e, KeyError), repr(e)
        return e
    except BaseException as e:
        pytest.fail(f"not an Exception (a Rust panic?): {type(e).__name__}: {e}")


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    with pw_cache.Cache(
        l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db", encryption_key=KEY
    ) as c:
        yield c


def test_wrong_types_and_none(cache: pw_cache.Cache) -> None:
    c: Any = cache
    for call in (
        lambda: c.get(None),
        lambda: c.get(42),
        lambda: c.get(b"key"),
        lambda: c.put(None),
        lambda: c.put("entry"),
        lambda: c.put({"proxy_url": "http://1.2.3.4:1"}),
        lambda: c.delete(None),
        lambda: c.new_entry(None, "s"),
        lambda: c.new_entry("http://1.2.3.4:1", 5),
        lambda: c.new_entry("http://1.2.3.4:1", "s", password=5),
        lambda: c.new_entry("http://1.2.3.4:1", "s", ttl_seconds="60"),
        lambda: c.invalidate_by_health(None),
        lambda: c.warm(None),
        lambda: c.warm(42),
        lambda: c.export(None),
        lambda: c.warm("x.json", ttl="1"),
        lambda: Entry(None),
        lambda: Entry("http://1.2.3.4:1", "s", fetch_time="yesterday"),
        lambda: Entry("http://1.2.3.4:1", "s", username=b"bytes"),
        lambda: Secret(None),
        lambda: native.decrypt([KEY], "a str, not bytes"),
        lambda: native.encrypt(KEY, "keys must be a list"),
        lambda: native.encrypt([KEY], None),
    ):
        assert isinstance(outcome(call), TypeError)


def test_out_of_range_numbers(cache: pw_cache.Cache) -> None:
    for call in (
        lambda: pw_cache.Entry("http://1.2.3.4:1", "s", ttl_seconds=-1),
        lambda: pw_cache.Entry("http://1.2.3.4:1", "s", ttl_seconds=2**70),
        lambda: cache.new_entry("http://1.2.3.4:1", "s", ttl_seconds=-5),
        lambda: cache.warm("x.json", ttl=-1),
    ):
        assert isinstance(outcome(call), OverflowError)
    for call in (
        lambda: pw_cache.Entry("http://1.2.3.4:1", "s", ttl_seconds=2**63),
        lambda: cache.new_entry("http://1.2.3.4:1", "s", ttl_seconds=10**15),
        lambda: pw_cache.Entry("http://1.2.3.4:1", "s", health_status="sick"),
        lambda: cache.warm("x.json", ttl=0),
    ):
        assert isinstance(outcome(call), pw_cache.InvalidEntryError)


def test_lone_surrogates(cache: pw_cache.Cache) -> None:
    for call in (
        lambda: cache.get(SURROGATE),
        lambda: cache.delete("k" + SURROGATE),
        lambda: cache.new_entry("http://1.2.3.4:1", SURROGATE),
        lambda: cache.new_entry("http://1.2.3.4:1", "s", password=SURROGATE),
        lambda: pw_cache.Entry(SURROGATE),
        lambda: pw_cache.Secret(SURROGATE),
        lambda: cache.warm(SURROGATE + ".json"),
        lambda: _native.encrypt([KEY], SURROGATE),
        lambda: _native.encrypt([SURROGATE], "x"),
        lambda: pw_cache.Cache(l2_cache_dir=SURROGATE),
        lambda: pw_cache.Cache(encryption_key=SURROGATE),
        lambda: pw_cache.Cache.from_config_json(SURROGATE),
    ):
        assert isinstance(outcome(call), (UnicodeError, pw_cache.Error, OSError)), call


def test_huge_strings(cache: pw_cache.Cache) -> None:
    assert outcome(lambda: cache.get(HUGE)) is None
    assert outcome(lambda: cache.delete(HUGE)) is False
    result = outcome(lambda: cache.put(pw_cache.Entry("http://" + HUGE + ":80", "s")))
    assert result is True or isinstance(result, pw_cache.InvalidEntryError)
    for call in (
        lambda: cache.put(cache.new_entry("http://1.2.3.4:1", HUGE)),
        lambda: cache.put(cache.new_entry("http://1.2.3.4:1", "s", password=HUGE)),
        lambda: cache.put(pw_cache.Entry("http://1.2.3.4:1", "s", key=HUGE)),
    ):
        result = outcome(call)
        assert result is True or isinstance(result, pw_cache.Error)
        assert HUGE[:1000] not in str(result)
    assert isinstance(outcome(lambda: _native.decrypt([KEY], HUGE.encode())), pw_cache.Error)
    token = outcome(lambda: _native.encrypt([KEY], HUGE))
    assert isinstance(token, bytes)
    assert _native.decrypt([KEY], token) == HUGE


def test_bad_options() -> None:
    for options in (
        {"bogus_option": 1},
        {"l1_max_entries": 0},
        {"l1_max_entries": -1},
        {"l1_max_entries": "ten"},
        {"l2_backend": "nope"},
        {"l3_backend": 5},
        {"default_ttl_seconds": 10},
        {"default_ttl_seconds": 10**30},
        {"default_ttl_seconds": 1.5},
        {"per_source_ttl": {"s": 1}},
        {"per_source_ttl": {1: 3600}},
        {"per_source_ttl": [1, 2]},
        {"l2_cache_dir": ""},
        {"l2_cache_dir": None},
        {"l2_cache_dir": object()},
        {"l1_config": "big"},
        {"l1_config": {"max_entries": 1, "colour": "red"}},
        {"failure_threshold": 0},
        {"encryption_key": 5},
        {"encryption_key": "***"},
        {"redis_url": "http://not-redis"},
        {"redis_namespace": "has space"},
        {"key_file": 5},
        {"enable_statistics": float("nan")},
    ):
        error = outcome(partial(pw_cache.Cache, **options))
        assert isinstance(error, pw_cache.ConfigError), (options, error)
        assert isinstance(error, ValueError)
        name = next(iter(options)).split("_max")[0]
        assert name.split("_")[0] in str(error), (options, str(error))


def test_bad_config_json() -> None:
    for doc in ("", "[]", " [1]", "null", "42", '{"l2_backend": "nope"}', "{" * 100_000, HUGE):
        error = outcome(partial(pw_cache.Cache.from_config_json, doc))
        assert isinstance(error, pw_cache.ConfigError)


def test_bad_key_is_not_echoed(tmp_path: Path) -> None:
    not_a_key = "my-database-password-is-hunter2"
    error = outcome(
        lambda: pw_cache.Cache(
            l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db",
            encryption_key=not_a_key,
        )
    )  # fmt: skip
    assert isinstance(error, pw_cache.EncryptionKeyError)
    assert "hunter2" not in str(error) and "hunter2" not in repr(error)


def test_secrets_never_show(cache: pw_cache.Cache) -> None:
    entry = cache.new_entry("http://1.2.3.4:8080", "s", username="alice-user", password="pa55word")
    cache.put(entry)
    got = cache.get(entry.key)
    assert got is not None
    for shown in (
        repr(entry), str(entry), repr(got), repr(got.password), str(got.password),
        f"{got.username}", f"{got.password!r}", repr(got.to_dict()), got.to_json(), repr(cache),
    ):  # fmt: skip
        assert "alice-user" not in shown and "pa55word" not in shown, shown
    assert str(got.password) == "**********"
    assert repr(got.password) == "Secret('**********')"
    assert got.password is not None and len(got.password) == len("pa55word")
    assert got.password.get_secret_value() == "pa55word"
    with pytest.raises(TypeError):
        pickle.dumps(got.password)
    # An invalid entry's error names it, not its credentials.
    bad = pw_cache.Entry("http://user:pa55word@1.2.3.4:8080", "s", password="pa55word")
    error = outcome(lambda: cache.put(bad))
    assert isinstance(error, pw_cache.InvalidEntryError)
    assert "pa55word" not in str(error)


def test_closed_cache(tmp_path: Path) -> None:
    cache = pw_cache.Cache(l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db")
    cache.close()
    error = outcome(lambda: cache.get("k"))
    assert isinstance(error, pw_cache.ClosedError)
    assert cache.config["l2_backend"] == "jsonl"  # the config stays readable
