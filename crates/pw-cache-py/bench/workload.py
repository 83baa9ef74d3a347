"""The workload of proxywhirl's baseline benchmark (``bench_python.py``), as plain data.

Entry ``i`` of ``n``: URL ``http://10.a.b.c:(8000 + i % 1000)`` from the bytes of ``i``, key the
first 16 hex digits of the URL's SHA-256, source cycling through fetched/user/api/warmed, odd
entries with ``user{i}`` / ``pass-{i}-secret``. Miss keys come from ``http://miss.example:{i}``.
The mixed sequence is ``10 * n`` draws of a zipf(1.1) rank over a shuffled order, from a
splitmix64 generator seeded ``0x5EED``. ``benches/src/workload.rs`` is the Rust port; both are
checked against the SHA-256 of the reference's draw (``benches/testdata/mixed_n1000.sha256``).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

MASK64 = (1 << 64) - 1
SEED = 0x5EED
ZIPF_S = 1.1
MIXED_PER_ENTRY = 10
TTL_SECONDS = 86_400
SOURCES = ("fetched", "user", "api", "warmed")


class SplitMix64:
    """Vigna's splitmix64: ``next_u64`` and a uniform float in [0, 1) from its top 53 bits."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))


def cache_key(url: str) -> str:
    """proxywhirl's cache key: 16 hex digits of the URL's SHA-256."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Item:
    """One entry of the workload, before it is made into some implementation's entry."""

    key: str
    proxy_url: str
    source: str
    username: str | None
    password: str | None


def items(n: int) -> list[Item]:
    """The ``n`` entries, in put order."""
    out = []
    for i in range(n):
        url = f"http://10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:{8000 + i % 1000}"
        odd = i % 2 == 1
        out.append(
            Item(
                key=cache_key(url),
                proxy_url=url,
                source=SOURCES[i % 4],
                username=f"user{i}" if odd else None,
                password=f"pass-{i}-secret" if odd else None,
            )
        )
    return out


def miss_keys(n: int) -> list[str]:
    """``n`` keys that no entry has."""
    return [cache_key(f"http://miss.example:{i}") for i in range(n)]


def mixed_indices(n: int) -> list[int]:
    """The ``10 * n`` entry indices of the mixed phase (zipf(1.1) over a shuffled order)."""
    rng = SplitMix64(SEED)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next_u64() % (i + 1)
        order[i], order[j] = order[j], order[i]
    cdf = []
    total = 0.0
    for rank in range(n):
        total += 1.0 / (rank + 1) ** ZIPF_S
        cdf.append(total)
    draws = []
    for _ in range(MIXED_PER_ENTRY * n):
        rank = bisect.bisect_right(cdf, rng.uniform() * total)
        draws.append(order[min(rank, n - 1)])
    return draws
