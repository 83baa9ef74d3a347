"""The engine's tracing events reach Python's logging, logger "pw_cache", never with a
secret."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pw_cache
import pytest
from pw_cache import _native


def test_events_reach_the_pw_cache_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = _native.generate_key()
    caplog.set_level(logging.DEBUG, logger="pw_cache")
    # Opened from another thread too: events raised without the GIL, from any thread, arrive.
    opened: list[pw_cache.Cache] = []
    thread = threading.Thread(
        target=lambda: opened.append(
            pw_cache.Cache(
                l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db",
                encryption_key=key,
            )
        )
    )  # fmt: skip
    thread.start()
    thread.join()
    with opened[0] as cache:
        entry = cache.new_entry("http://1.2.3.4:8080", "s", password="pa55word-xyz")
        cache.put(entry)
    records = [r for r in caplog.records if r.name == "pw_cache"]
    assert records, "no event arrived"
    assert any("schema" in r.getMessage() for r in records)
    assert all(r.levelno in (5, 10, 20, 30, 40) for r in records)
    for record in records:
        text = record.getMessage()
        assert key not in text and "pa55word-xyz" not in text, text


def test_logger_level_filters(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pw_cache")
    with pw_cache.Cache(l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db"):
        pass
    assert not [r for r in caplog.records if r.name == "pw_cache" and r.levelno < logging.ERROR]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_failing_handler_does_not_break_the_cache(tmp_path: Path) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler failure")

        def handleError(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handleError failure")

    logger = logging.getLogger("pw_cache")
    handler = Broken()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with pw_cache.Cache(l2_cache_dir=tmp_path / "l2", l3_database_path=tmp_path / "l3.db") as c:
            c.put(c.new_entry("http://1.2.3.4:8080", "s"))
            assert c.get(pw_cache.generate_cache_key("http://1.2.3.4:8080")) is not None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
