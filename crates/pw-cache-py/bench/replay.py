"""Replays proxywhirl's baseline workload through proxywhirl 0.3.3, ``pw_cache.compat`` and
``pw_cache``'s native API, in one run, and prints the ratios.

    python bench/replay.py [--sizes 1000,10000] [--big 100000] [--cap 8] [--dir /dev/shm]
        [--subjects proxywhirl,compat,native] [--out FILE.jsonl] [--table FILE.md]

The workload is ``bench_python.py``'s (see ``workload.py``): the manager with L1 = N/10 and L2
and L3 unbounded, on a JSONL and on a SQLite L2, phases ``put`` (all N, through the public
API), ``get_hit``, ``get_miss`` and ``mixed`` (10 N zipf(1.1) gets); credentials encrypted
with the key in ``PROXYWHIRL_CACHE_ENCRYPTION_KEY``. Beside it, ``l1_hits`` (L1 holds all
1,000 entries: every get is an L1 hit) and ``call_cost`` (where one call's time goes).

Every (configuration, subject) runs in a fresh child process of the same interpreter, so the
three share Python, pydantic and storage, and one does not warm another's caches. proxywhirl
must be importable (``pip install proxywhirl==0.3.3``); without it only pw-cache runs. A phase
stops after ``--cap`` seconds; rates are then over the prefix done, and the rest of a capped
``put`` is loaded untimed (proxywhirl's with its file writes batched, as ``bench_python.py``
does, so that the later phases see all N entries).

One JSON record per (configuration, subject, phase) goes to stdout (and ``--out``), the table
of ratios to stderr (and ``--table``). Numbers and how they were made: docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload

KEY = "mKk4dLD8y0ZL0hQm4rV8mXyqkJ6bqkTq2wQ0Cq1zM3A="
SUBJECTS = ("proxywhirl", "compat", "native")
MANAGER_PHASES = ("put", "get_hit", "get_miss", "mixed")
L1_HITS_N = 1000
TARGET_MANAGER = 10.0
TARGET_L1 = 1.0
TIMES = "\u00d7"


# --- the subjects ---------------------------------------------------------------------------


class Manager:
    """proxywhirl's ``CacheManager`` API: proxywhirl 0.3.3's own or ``pw_cache.compat``'s."""

    def __init__(self, package: str) -> None:
        self.package = package
        # Both log to loguru (the drop-in as proxywhirl does): no sink for either, as in
        # bench_python.py.
        try:
            from loguru import logger
        except ImportError:
            pass
        else:
            logger.remove()
        self.models = importlib.import_module(f"{package}.models")
        self.manager_class = importlib.import_module(f"{package}.manager").CacheManager
        self.secret = importlib.import_module("pydantic").SecretStr

    def open(self, backend: str, directory: Path, l1_max: int) -> None:
        m = self.models
        config = m.CacheConfig(
            l1_config=m.CacheTierConfig(max_entries=l1_max),
            l2_config=m.CacheTierConfig(max_entries=None),
            l3_config=m.CacheTierConfig(max_entries=None),
            l2_backend=m.L2BackendType(backend),
            l2_cache_dir=str(directory / "l2"),
            l3_database_path=str(directory / "l3" / "proxywhirl.db"),
        )
        self.cache = self.manager_class(config)
        self.l1_max = l1_max

    def entry(self, item: workload.Item, t0: datetime) -> Any:
        secret = self.secret
        return self.models.CacheEntry(
            key=item.key,
            proxy_url=item.proxy_url,
            username=secret(item.username) if item.username else None,
            password=secret(item.password) if item.password else None,
            source=item.source,
            fetch_time=t0,
            last_accessed=t0,
            ttl_seconds=workload.TTL_SECONDS,
            expires_at=t0 + timedelta(seconds=workload.TTL_SECONDS),
        )

    def put_op(self) -> Callable[[Any], object]:
        cache = self.cache
        return lambda e: cache.put(e.key, e)

    def get_op(self) -> Callable[[str], Any]:
        return self.cache.get  # type: ignore[no-any-return]

    def statistics(self) -> dict[str, int]:
        stats = self.cache.statistics
        flat = {}
        for tier in ("l1", "l2", "l3"):
            tier_stats = getattr(stats, f"{tier}_stats")
            for name in ("hits", "misses", "evictions_lru", "evictions_ttl", "evictions_health"):
                flat[f"{tier}_{name}"] = getattr(tier_stats, name)
        flat["promotions"] = stats.promotions
        flat["demotions"] = stats.demotions
        return flat

    def fill(self, entries: Sequence[Any]) -> None:
        """Loads entries untimed (after a capped put phase)."""
        if self.package == "proxywhirl.cache":
            fill_proxywhirl(self.cache, entries, self.l1_max)
        else:
            put = self.put_op()
            for entry in entries:
                put(entry)

    def close(self) -> None:
        close = getattr(self.cache, "close", None)
        if close is not None:
            close()
        else:  # proxywhirl's manager has no close: its SQLite L2 connection has
            tier_close = getattr(self.cache.l2_tier, "close", None)
            if tier_close is not None:
                tier_close()


class Native:
    """``pw_cache.Cache``, its own API."""

    def __init__(self) -> None:
        import pw_cache

        self.pw_cache = pw_cache

    def open(self, backend: str, directory: Path, l1_max: int) -> None:
        # One L1 shard, as the compat layer opens it: the same L1 as proxywhirl's, so the three
        # subjects' phases do the same hits, misses and promotions.
        self.cache = self.pw_cache.Cache(
            l1_shards=1,
            l1_max_entries=l1_max,
            l2_max_entries=None,
            l3_max_entries=None,
            l2_backend=backend,
            l2_cache_dir=str(directory / "l2"),
            l3_database_path=str(directory / "l3" / "proxywhirl.db"),
        )

    def entry(self, item: workload.Item, t0: datetime) -> Any:
        return self.pw_cache.Entry(
            item.proxy_url,
            item.source,
            key=item.key,
            username=item.username,
            password=item.password,
            ttl_seconds=workload.TTL_SECONDS,
            fetch_time=t0,
            last_accessed=t0,
            expires_at=t0 + timedelta(seconds=workload.TTL_SECONDS),
        )

    def put_op(self) -> Callable[[Any], object]:
        return self.cache.put  # type: ignore[no-any-return]

    def get_op(self) -> Callable[[str], Any]:
        return self.cache.get  # type: ignore[no-any-return]

    def statistics(self) -> dict[str, int]:
        stats = self.cache.statistics()
        flat = {}
        for tier in ("l1", "l2", "l3"):
            for name in ("hits", "misses", "evictions_lru", "evictions_ttl", "evictions_health"):
                flat[f"{tier}_{name}"] = stats[f"{tier}_stats"][name]
        flat["promotions"] = stats["promotions"]
        flat["demotions"] = stats["demotions"]
        return flat

    def fill(self, entries: Sequence[Any]) -> None:
        for entry in entries:
            self.cache.put(entry)

    def close(self) -> None:
        self.cache.close()


def subject(name: str) -> Manager | Native:
    if name == "proxywhirl":
        return Manager("proxywhirl.cache")
    if name == "compat":
        return Manager("pw_cache.compat")
    return Native()


# --- proxywhirl's untimed fill: its own tier code, file writes batched ----------------------


class _HeldConnection:
    """A connection whose commits and closes are put off until the fill ends."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, *args: Any) -> Any:
        return self.connection.execute(*args)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _HeldConnection:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


class _Sqlite3WithOneConnection:
    """The ``sqlite3`` module as proxywhirl's L3 sees it during a fill: one held connection."""

    def __init__(self, held: _HeldConnection) -> None:
        self._held = held

    def connect(self, *args: Any, **kwargs: Any) -> _HeldConnection:
        return self._held

    def __getattr__(self, name: str) -> Any:
        return getattr(sqlite3, name)


def fill_proxywhirl(manager: Any, entries: Sequence[Any], l1_max: int) -> None:
    """Loads ``entries`` into proxywhirl's L2 and L3 with their writes batched (a JSONL shard
    written once, one SQLite commit), then the last ``l1_max`` into its L1 without demotion."""
    tiers = importlib.import_module("proxywhirl.cache.tiers")
    l2, l3 = manager.l2_tier, manager.l3_tier
    if isinstance(l2, tiers.JsonlCacheTier):
        shards: dict[int, dict[str, Any]] = {}
        read, write = l2._read_shard, l2._write_shard

        def read_held(shard: int) -> dict[str, Any]:
            if shard not in shards:
                shards[shard] = read(shard)
            return dict(shards[shard])

        def write_held(shard: int, content: dict[str, Any]) -> bool:
            shards[shard] = dict(content)
            return True

        l2._read_shard, l2._write_shard = read_held, write_held
        try:
            for entry in entries:
                l2.put(entry.key, entry)
        finally:
            l2._read_shard, l2._write_shard = read, write
        for shard, content in shards.items():
            write(shard, content)
    else:
        connection = l2._get_connection()
        l2._conn = _HeldConnection(connection)
        try:
            for entry in entries:
                l2.put(entry.key, entry)
        finally:
            l2._conn = connection
            connection.commit()
    connection = sqlite3.connect(str(l3.db_path))
    real_sqlite3 = tiers.sqlite3
    tiers.sqlite3 = _Sqlite3WithOneConnection(_HeldConnection(connection))
    try:
        for entry in entries:
            l3.put(entry.key, entry)
    finally:
        tiers.sqlite3 = real_sqlite3
        connection.commit()
        connection.close()
    on_evict, manager.l1_tier._on_evict = manager.l1_tier._on_evict, None
    try:
        for entry in entries[-l1_max:]:
            manager.l1_tier.put(entry.key, entry)
    finally:
        manager.l1_tier._on_evict = on_evict


# --- a worker: one configuration through one subject ----------------------------------------


def run_phase(ops: Iterable[Any], op: Callable[[Any], object], cap: float) -> tuple[int, float]:
    done = 0
    start = time.perf_counter()
    deadline = start + cap
    for item in ops:
        op(item)
        done += 1
        if time.perf_counter() > deadline:
            break
    return done, time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    os.environ["PROXYWHIRL_CACHE_ENCRYPTION_KEY"] = KEY
    os.environ.pop("PROXYWHIRL_CACHE_KEY_PREVIOUS", None)
    n, l1_max, cap = args.n, args.l1, args.cap
    driver = subject(args.worker)
    t0 = datetime.now(timezone.utc)
    items = workload.items(n)
    entries = [driver.entry(item, t0) for item in items]
    keys = [item.key for item in items]
    phases: dict[str, list[Any]] = {"put": entries, "get_hit": keys}
    if args.config != "l1_hits":
        phases["get_miss"] = workload.miss_keys(n)
        phases["mixed"] = [keys[i] for i in workload.mixed_indices(n)]
    directory = Path(tempfile.mkdtemp(dir=args.dir, prefix="pw-replay-"))
    base = {
        "subject": args.worker,
        "config": args.config,
        "backend": args.backend,
        "n": n,
        "l1_max": l1_max,
    }
    try:
        driver.open(args.backend, directory, l1_max)
        for phase, ops in phases.items():
            before = driver.statistics()
            extra: dict[str, Any] = {}
            if phase == "put":
                done, seconds = run_phase(ops, driver.put_op(), cap)
                if done < len(ops):
                    fill_start = time.perf_counter()
                    driver.fill(ops[done:])
                    extra["untimed_fill_seconds"] = round(time.perf_counter() - fill_start, 2)
            else:
                get = driver.get_op()
                found = [0]

                def counted(
                    key: str, get: Callable[[str], Any] = get, found: list[int] = found
                ) -> None:
                    if get(key) is not None:
                        found[0] += 1

                done, seconds = run_phase(ops, counted, cap)
                extra["returned_entries"] = found[0]
            after = driver.statistics()
            delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
            emit(
                dict(
                    base,
                    phase=phase,
                    ops_planned=len(ops),
                    ops_done=done,
                    complete=done == len(ops),
                    seconds=round(seconds, 4),
                    ops_per_sec=round(done / seconds, 1) if seconds > 0 else None,
                    stats_delta=delta,
                    **extra,
                )
            )
        if args.config == "l1_hits" and args.worker != "native":
            for name, ns in call_costs(driver, keys[: min(len(keys), l1_max)]):
                emit(dict(base, config="call_cost", phase=name, ns_per_call=round(ns, 1)))
        driver.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def call_costs(driver: Any, keys: list[str]) -> list[tuple[str, float]]:
    """Where an L1 hit's and a put's time goes, in ns per call (best of 5 rounds)."""

    def per_call(fn: Callable[[], object], number: int = 20_000) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9

    cache = driver.cache
    key = keys[len(keys) // 2]
    entry = cache.get(key)
    fields = entry.model_dump()
    costs = [
        ("get: whole L1 hit (CacheManager.get)", per_call(lambda: cache.get(key))),
        (
            "pydantic: CacheEntry.model_validate of the fields",
            per_call(lambda: driver.models.CacheEntry.model_validate(fields)),
        ),
    ]
    if driver.package == "pw_cache.compat":
        engine, model = cache._engine, cache._entry_model
        native = engine.get(key)
        costs += [
            ("boundary: a call into Rust and back (Cache.closed)", per_call(lambda: engine.closed)),
            ("engine: L1 hit to a pw_cache.Entry (Cache.get)", per_call(lambda: engine.get(key))),
            (
                "engine: L1 hit to a CacheEntry (Cache.get into=)",
                per_call(lambda: engine.get(key, into=model)),
            ),
            ("build: a CacheEntry from an Entry (EntryModel)", per_call(lambda: model(native))),
            ("put: whole (CacheManager.put)", per_call(lambda: cache.put(key, entry), 2_000)),
            (
                "put: CacheEntry to an Entry (EntryModel.to_entry)",
                per_call(lambda: model.to_entry(entry, key)),
            ),
            (
                "put: the engine's put of an Entry (Cache.put)",
                per_call(lambda: engine.put(native), 2_000),
            ),
        ]
    else:
        costs.append(
            ("put: whole (CacheManager.put)", per_call(lambda: cache.put(key, entry), 200))
        )
    return costs


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


# --- the parent: every configuration through every subject, then the table -----------------


def configurations(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(config, backend, n, l1_max) in run order."""
    out = [("l1_hits", "jsonl", L1_HITS_N, L1_HITS_N)]
    for n in (int(s) for s in args.sizes.split(",") if s):
        for backend in ("jsonl", "sqlite"):
            out.append(("manager", backend, n, max(1, n // 10)))
    if args.big:
        out.append(("manager", "sqlite", args.big, max(1, args.big // 10)))
    return out


def available(name: str) -> bool:
    module = "proxywhirl.cache" if name == "proxywhirl" else "pw_cache"
    probe = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--big", type=int, default=100_000, help="extra N, SQLite L2 (0: off)")
    parser.add_argument("--cap", type=float, default=8.0, help="seconds per phase at most")
    parser.add_argument("--dir", default="/dev/shm", help="where the caches are made")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument("--out", default=None, help="also write the records here")
    parser.add_argument("--table", default=None, help="also write the table here")
    parser.add_argument("--worker", choices=SUBJECTS, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--l1", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    subjects = [s for s in args.subjects.split(",") if s]
    for name in list(subjects):
        if not available(name):
            print(f"replay: {name} is not importable here; skipped", file=sys.stderr)
            subjects.remove(name)
    records: list[dict[str, Any]] = []
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    started = time.perf_counter()
    for config, backend, n, l1_max in configurations(args):
        for name in subjects:
            command = [sys.executable, __file__, "--worker", name, "--config", config]
            command += ["--backend", backend, "--n", str(n), "--l1", str(l1_max)]
            command += ["--cap", str(args.cap), "--dir", args.dir]
            print(f"replay: {config} {backend} n={n} through {name}", file=sys.stderr)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return 1
            for line in result.stdout.splitlines():
                record = json.loads(line)
                records.append(record)
                print(line, flush=True)
                if out is not None:
                    out.write(line + "\n")
    summary = {
        "phase": "total",
        "wall_seconds": round(time.perf_counter() - started, 1),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cap_seconds": args.cap,
        "dir": args.dir,
    }
    print(json.dumps(summary))
    if out is not None:
        out.write(json.dumps(summary) + "\n")
        out.close()
    table = render(records)
    print(table, file=sys.stderr)
    if args.table:
        Path(args.table).write_text(table, encoding="utf-8")
    return 0


def render(records: list[dict[str, Any]]) -> str:
    """The markdown tables: ops/s of each subject and the ratios to proxywhirl; call costs."""
    rates: dict[tuple[str, str, int, str], dict[str, dict[str, Any]]] = {}
    costs: dict[str, dict[str, float]] = {}
    for r in records:
        if r.get("config") == "call_cost":
            costs.setdefault(r["phase"], {})[r["subject"]] = r["ns_per_call"]
        elif "ops_per_sec" in r:
            rates.setdefault((r["config"], r["backend"], r["n"], r["phase"]), {})[r["subject"]] = r
    lines = [
        "| config | backend | n | phase | proxywhirl ops/s | compat ops/s | compat ratio"
        " | native ops/s | native ratio | target |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]

    def rate(r: dict[str, Any] | None) -> str:
        if r is None:
            return "—"
        capped = "" if r["complete"] else " (capped)"
        return f"{r['ops_per_sec']:,.0f}{capped}"

    def ratio(r: dict[str, Any] | None, ref: dict[str, Any] | None) -> float | None:
        if r is None or ref is None or not ref["ops_per_sec"]:
            return None
        return float(r["ops_per_sec"]) / float(ref["ops_per_sec"])

    for (config, backend, n, phase), by in rates.items():
        ref, compat, native = by.get("proxywhirl"), by.get("compat"), by.get("native")
        compat_ratio, native_ratio = ratio(compat, ref), ratio(native, ref)
        goal = TARGET_L1 if config == "l1_hits" and phase == "get_hit" else None
        goal = TARGET_MANAGER if config == "manager" else goal
        verdict = ""
        if goal is not None and compat_ratio is not None:
            verdict = f"≥ {goal:g}{TIMES}: {'met' if compat_ratio >= goal else 'MISSED'}"
        cells = [config, backend, str(n), phase, rate(ref), rate(compat)]
        cells += [shown_ratio(compat_ratio), rate(native), shown_ratio(native_ratio), verdict]
        lines.append("| " + " | ".join(cells) + " |")
    if costs:
        lines += ["", "| one call | proxywhirl ns | compat ns |", "|---|---:|---:|"]
        for name, by_subject in costs.items():
            cells = [
                f"{by_subject[s]:,.0f}" if s in by_subject else "—"
                for s in ("proxywhirl", "compat")
            ]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def shown_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}{TIMES}" if value < 10 else f"{value:,.0f}{TIMES}"


if __name__ == "__main__":
    sys.exit(main())
