#!/usr/bin/env bash
# Every test of the repository: the Rust workspace (unit, integration, doc tests), then the
# Python package (crates/pw-cache-py/ci.sh: its own venv, ruff, mypy, pytest).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace "$@"
crates/pw-cache-py/ci.sh
