"""The ``pw-cache`` console script that ``pip install`` puts beside the interpreter is the
Rust command (crates/pw-cache-cli): version, JSON output, exit codes, no secret printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pw_cache
import pytest
from _support import KEY


def script() -> str:
    """The installed console script (beside this interpreter), else the module's entry point."""
    found = shutil.which("pw-cache", path=str(Path(sys.executable).parent))
    return found if found is not None else ""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [script()] if script() else [sys.executable, "-m", "pw_cache._cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, check=False)


def test_the_script_is_installed_and_tells_its_version() -> None:
    assert script(), "pip install puts a pw-cache script beside the interpreter"
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"pw-cache {pw_cache.__version__}"


def test_stats_of_a_cache_as_json_and_its_exit_codes(tmp_path: Path) -> None:
    env = dict(os.environ, PROXYWHIRL_CACHE_ENCRYPTION_KEY=KEY)
    with pw_cache.Cache(
        l2_cache_dir=tmp_path / "l2",
        l3_database_path=tmp_path / "db" / "l3.db",
        encryption_key=KEY,
    ) as cache:
        entry = cache.new_entry(
            "http://203.0.113.9:8080", "user", username="u", password="pw-secret-9"
        )
        cache.put(entry)
    common = ["--l2-dir", str(tmp_path / "l2"), "--l2-backend", "jsonl"]
    common += ["--l3-db", str(tmp_path / "db" / "l3.db")]
    stats = run("stats", *common, "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    document = json.loads(stats.stdout)
    assert isinstance(document, dict)
    got = run("get", entry.key, *common, env=env)
    assert got.returncode == 0, got.stderr
    assert "203.0.113.9" in got.stdout and "***" in got.stdout
    assert "pw-secret-9" not in got.stdout + got.stderr
    missing = run("stats", "--l2-dir", str(tmp_path / "nowhere"), "--l2-backend", "jsonl", env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")
    usage = run("no-such-command")
    assert usage.returncode == 2


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions(shell: str) -> None:
    done = run("completions", shell)
    assert done.returncode == 0 and "pw-cache" in done.stdout
