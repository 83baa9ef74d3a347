#!/usr/bin/env bash
# Every test of the repository: the Rust workspace (unit, integration, doc tests), then the
# Python package (crates/pw-cache-py/ci.sh: its own venv, ruff, mypy, pytest).
set -euo pipefail
cd "$(dirname "$0")"
# The `pw-cache` command as users get it (`cargo install`, a release build): its tests
# (crates/pw-cache-cli/tests/cli/) run this binary, named by PW_CACHE_BIN, instead of the
# debug one cargo builds for them. Built in the workspace's target directory, so that a second
# run rebuilds only what changed.
target_dir="${CARGO_TARGET_DIR:-target}"
cli_root="$target_dir/cli-install"
cargo install --path crates/pw-cache-cli --root "$cli_root" --target-dir "$target_dir" --locked --quiet
PW_CACHE_BIN="$(cd "$cli_root/bin" && pwd)/pw-cache"
export PW_CACHE_BIN
cargo test --workspace "$@"
crates/pw-cache-py/ci.sh
