"""The Python benchmark's workload (bench/workload.py) draws what bench_python.py draws: the
SHA-256 of its mixed sequence for N = 1,000 is the reference's (benches/testdata), which the
Rust port (benches/src/workload.rs) checks too."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))

import workload  # noqa: E402


def test_mixed_sequence_is_the_references() -> None:
    expected = (HERE.parents[2] / "benches" / "testdata" / "mixed_n1000.sha256").read_text()
    drawn = "".join(f"{i}\n" for i in workload.mixed_indices(1000))
    assert hashlib.sha256(drawn.encode()).hexdigest() == expected.strip()


def test_entries_and_misses_have_the_references_shape() -> None:
    items = workload.items(1000)
    assert items[0].proxy_url == "http://10.0.0.0:8000"
    assert items[999].proxy_url == "http://10.0.3.231:8999"
    assert items[0].username is None and items[3].password == "pass-3-secret"
    assert items[2].source == "api"
    assert items[0].key == hashlib.sha256(b"http://10.0.0.0:8000").hexdigest()[:16]
    assert not {i.key for i in items} & set(workload.miss_keys(1000))
