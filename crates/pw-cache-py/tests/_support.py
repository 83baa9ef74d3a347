"""Helpers shared by the native API's tests: a cache under a temporary directory."""

from pathlib import Path
from typing import Any

import pw_cache
import pytest
from pw_cache import _native

KEY = _native.generate_key()


def open_cache(tmp_path: Path, backend: str = "sqlite", **extra: Any) -> pw_cache.Cache:
    """A cache with L2 ``backend`` in ``tmp_path/l2`` and L3 in ``tmp_path/db/l3.db``."""
    options: dict[str, Any] = {
        "l2_cache_dir": tmp_path / "l2",
        "l2_backend": backend,
        "l3_database_path": tmp_path / "db" / "l3.db",
        "encryption_key": KEY,
    }
    options.update(extra)
    return pw_cache.Cache(**options)


@pytest.fixture(params=["jsonl", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each L2 backend in turn."""
    return str(request.param)
