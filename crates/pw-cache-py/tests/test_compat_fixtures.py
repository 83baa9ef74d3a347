"""pw_cache.compat reads the files proxywhirl 0.3.3 wrote (tests/fixtures/proxywhirl-0.3.3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pw_cache.compat.crypto import CURRENT_KEY_VAR, PREVIOUS_KEY_VAR
from pw_cache.compat.manager import CacheManager
from pw_cache.compat.models import CacheConfig, CacheTierConfig
from pydantic import SecretStr

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "proxywhirl-0.3.3"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="fixtures not found")


def manifest() -> dict[str, Any]:
    return json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))


def readable(store: str) -> list[dict[str, Any]]:
    return [
        e
        for e in manifest()["stores"][store]["entries"]
        if e["python_get"] == "ok" and not e["is_expired_at_generation"] and not e["synthetic"]
    ]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CURRENT_KEY_VAR, (FIXTURES / "key_current.txt").read_text().strip())
    monkeypatch.setenv(PREVIOUS_KEY_VAR, (FIXTURES / "key_previous.txt").read_text().strip())


def secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


@pytest.mark.parametrize(
    ("store", "copy", "config"),
    [
        ("jsonl_l2", "jsonl_l2", {"l2_backend": "jsonl", "l3_config": {"enabled": False}}),
        ("sqlite_l2", "sqlite_l2", {"l2_backend": "sqlite", "l3_config": {"enabled": False}}),
        ("sqlite_l3", "l3", {"l2_config": {"enabled": False}}),
    ],
)
def test_manager_reads_proxywhirls_entries(
    keys: None, tmp_path: Path, store: str, copy: str, config: dict[str, Any]
) -> None:
    shutil.copytree(FIXTURES / copy, tmp_path / copy)
    fields: dict[str, Any] = {
        "l2_cache_dir": str(tmp_path / copy),
        "l3_database_path": str(tmp_path / "l3" / "proxywhirl.db"),
        **config,
    }
    for name in ("l2_config", "l3_config"):
        if name in fields:
            fields[name] = CacheTierConfig(**fields[name])
    manager = CacheManager(CacheConfig(**fields))
    try:
        expected = readable(store)
        assert expected
        for want in expected:
            got = manager.get(want["key"])
            assert got is not None, want["key"]
            assert got.proxy_url == want["proxy_url"]
            assert got.source == want["source"]
            assert secret(got.username) == want["username"]
            assert secret(got.password) == want["password"]
            assert got.health_status == want["health_status"]
            assert got.ttl_seconds == want["ttl_seconds"]
    finally:
        manager.close()
