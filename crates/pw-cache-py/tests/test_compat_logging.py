"""The drop-in logs as proxywhirl does (its puts, hits, misses, clears), to loguru when it is
installed, else to ``logging``; never a credential, not even one inside a proxy URL."""

from __future__ import annotations

import importlib.util
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _support import KEY
from pw_cache.compat import _log
from pw_cache.compat.manager import CacheManager
from pw_cache.compat.models import CacheConfig, CacheEntry
from pydantic import SecretStr


def manager_and_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[CacheManager, CacheEntry]:
    monkeypatch.setenv("PROXYWHIRL_CACHE_ENCRYPTION_KEY", KEY)
    manager = CacheManager(
        CacheConfig(l2_cache_dir=str(tmp_path / "l2"), l3_database_path=str(tmp_path / "l3.db"))
    )
    now = datetime.now(timezone.utc)
    url = "http://url-user:url-pass@203.0.113.7:8080"
    entry = CacheEntry(
        key=CacheManager.generate_cache_key(url),
        proxy_url=url,
        username=SecretStr("secret_user"),
        password=SecretStr("secret_pass"),
        source="test",
        fetch_time=now,
        last_accessed=now,
        ttl_seconds=3600,
        expires_at=now + timedelta(hours=1),
    )
    return manager, entry


def exercise(manager: CacheManager, entry: CacheEntry) -> None:
    # The engine refuses credentials inside the URL; the put's log line masks them anyway.
    assert manager.put(entry.key, entry) is False
    plain = entry.model_copy(
        update={"proxy_url": "http://203.0.113.8:8080", "key": "0123456789abcdef"}
    )
    assert manager.put(plain.key, plain) is True
    manager.get(plain.key)
    manager.get("ffffffffffffffff")
    manager.clear()
    manager.close()


def check(text: str) -> None:
    assert "Cache put: key=" in text and "credentials=***" in text
    assert "Cache hit:" in text and "Cache miss (all tiers): ffffffffffffffff" in text
    assert "Cache cleared: 3 entries" in text, "one entry in each of the three tiers"
    for secret in ("secret_user", "secret_pass", "url-user", "url-pass"):
        assert secret not in text
    assert "***@203.0.113.7:8080" in text


@pytest.mark.skipif(importlib.util.find_spec("loguru") is None, reason="loguru not installed")
def test_to_loguru(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), format="{message}", level="DEBUG")
    try:
        exercise(*manager_and_entry(tmp_path, monkeypatch))
    finally:
        logger.remove(sink)
    check("".join(lines))


def test_to_logging_without_loguru(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_log, "_LOGURU", None)
    with caplog.at_level(logging.DEBUG, logger="pw_cache.compat"):
        exercise(*manager_and_entry(tmp_path, monkeypatch))
    check(caplog.text)


def test_shown_url_masks_user_information() -> None:
    assert _log.shown_url("http://203.0.113.7:8080") == "http://203.0.113.7:8080"
    assert _log.shown_url("socks5://u:p@h:1") == "socks5://***@h:1"
    assert _log.shown_url("http://a@b@h:1") == "http://***@h:1"
