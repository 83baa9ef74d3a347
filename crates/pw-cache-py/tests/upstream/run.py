#!/usr/bin/env python3
"""Run proxywhirl 0.3.3's own cache unit tests against pw_cache.compat and score them.

The tests live outside the project (another project's code, not copied here): in
``$PW_UPSTREAM``, else ``../shared/upstream/proxywhirl-0.3.3`` beside the repository root,
else ``/work/shared/upstream/proxywhirl-0.3.3``. When none exists the run is skipped (exit 0).

They run with the command of that directory's README, plus ``-p pw_cache.compat.pytest_plugin``
so that ``proxywhirl.cache`` is pw-cache. The results are compared with ``expected.tsv``
(A: public behaviour a faithful implementation passes; B: behaviour pw-cache changes on
purpose; C: Python internals; D: other) and printed as a table per file and category. The
failing A tests are printed, and written to ``--failures FILE`` when given. Exit status: 0, unless ``--strict`` and an A test did not pass (1); 2 when the
run itself broke (no results at all).

The Python used (``--python``, default this one) needs proxywhirl 0.3.3, pw_cache and the
test dependencies: pytest pytest-asyncio pytest-timeout pytest-mock hypothesis respx
polyfactory faker syrupy.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
OUTCOME_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)")


def upstream_dir() -> Path | None:
    candidates = [
        os.environ.get("PW_UPSTREAM"),
        str(REPO_ROOT.parent / "shared" / "upstream" / "proxywhirl-0.3.3"),
        "/work/shared/upstream/proxywhirl-0.3.3",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "expected.tsv").is_file():
            return Path(candidate)
    return None


def read_expected(path: Path) -> dict[str, str]:
    expected: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0].startswith("tests/"):
            expected[fields[0]] = fields[1]
    return expected


def run_tests(python: str, directory: Path, extra: list[str]) -> tuple[dict[str, str], str]:
    command = [
        python,
        "-m",
        "pytest",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--timeout",
        "120",
        "-W",
        "ignore",
        "-p",
        "pw_cache.compat.pytest_plugin",
        *extra,
        "tests/unit",
    ]
    print("$ (cd", directory, "&&", " ".join(command) + ")", flush=True)
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    outcomes: dict[str, str] = {}
    for line in done.stdout.splitlines():
        match = OUTCOME_LINE.match(line)
        if match:
            outcome, node = match.groups()
            # A test that failed and then errored in teardown: keep the worse.
            if outcomes.get(node) not in ("FAILED", "ERROR"):
                outcomes[node] = outcome
    return outcomes, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to run pytest")
    parser.add_argument("--strict", action="store_true", help="exit 1 if an A test fails")
    parser.add_argument("--failures", default=None, help="also list failing A tests in this file")
    parser.add_argument("--log", default=None, help="write pytest's whole output here")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()

    directory = upstream_dir()
    if directory is None:
        print("skipped: proxywhirl 0.3.3's tests not found (set PW_UPSTREAM)")
        return 0
    expected = read_expected(directory / "expected.tsv")
    outcomes, output = run_tests(args.python, directory, args.pytest_args)
    if args.log:
        Path(args.log).write_text(output, encoding="utf-8")
    if not outcomes:
        print(output[-4000:])
        print("error: pytest reported no results")
        return 2

    table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    failing_a: list[str] = []
    for node, category in sorted(expected.items()):
        outcome = outcomes.get(node, "NOT RUN")
        file = node.split("::")[0].rsplit("/", 1)[-1]
        table[(file, category)]["passed" if outcome == "PASSED" else "failed"] += 1
        table[("total", category)]["passed" if outcome == "PASSED" else "failed"] += 1
        if category == "A" and outcome != "PASSED":
            failing_a.append(f"{node}\t{outcome}")
    unknown = sorted(set(outcomes) - set(expected))

    categories = sorted({category for _, category in table})
    files = [*sorted({file for file, _ in table} - {"total"}), "total"]
    header = f"{'file':36}" + "".join(f"{c + ' passed/total':>18}" for c in categories)
    print(header)
    print("-" * len(header))
    for file in files:
        cells = []
        for category in categories:
            counts = table.get((file, category))
            if counts:
                total = counts["passed"] + counts["failed"]
                cells.append(f"{counts['passed']:>11}/{total:<6}")
            else:
                cells.append(f"{'-':>18}")
        print(f"{file:36}" + "".join(cells))
    warm_b = [node for node, category in expected.items() if category == "B" and "warm" in node]
    warm_passed = sum(outcomes.get(node) == "PASSED" for node in warm_b)
    print(f"\nB warm tests (proxywhirl's return shape): {warm_passed}/{len(warm_b)} passed")
    if unknown:
        print(f"\n{len(unknown)} test(s) not in expected.tsv: " + ", ".join(unknown[:5]))

    print(f"\n{len(failing_a)} A test(s) not passing")
    for line in failing_a:
        print(f"  {line}")
    if args.failures:
        Path(args.failures).write_text("".join(line + "\n" for line in failing_a), encoding="utf-8")
    if failing_a and args.strict:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
