#!/usr/bin/env bash
# The Python package's checks: builds and installs it (release, through pip and maturin) into
# a virtual environment of its own, then ruff, mypy --strict and pytest.
#
# Needs CPython >= 3.10 with venv (python3, or $PYTHON) and PyPI. The venv is kept between
# runs in $PW_CACHE_PY_VENV (default: <cargo target dir>/venv-py), the package reinstalled.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
venv="${PW_CACHE_PY_VENV:-${CARGO_TARGET_DIR:-$root/target}/venv-py}"

step() { printf '\n--> pw-cache-py: %s\n' "$*"; }

step "venv $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip

step "pip install ./crates/pw-cache-py[test] (builds the release wheel)"
start=$(date +%s)
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$here"
"$venv/bin/python" -m pip install --quiet "$here[test]"
echo "built and installed in $(( $(date +%s) - start )) s"

step "proxywhirl 0.3.3 and its tests' dependencies (the compat layer is tested against it)"
"$venv/bin/python" -m pip install --quiet proxywhirl==0.3.3 pytest-asyncio pytest-timeout pytest-mock \
    hypothesis respx polyfactory faker syrupy

cd "$here"
step "ruff check"
"$venv/bin/ruff" check python tests bench
step "ruff format --check"
"$venv/bin/ruff" format --check python tests bench
step "mypy --strict (the package, its stubs and the native API's tests)"
"$venv/bin/mypy" --strict python/pw_cache tests/test_native_*.py
step "pytest"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests

upstream="${PW_UPSTREAM:-$root/../shared/upstream/proxywhirl-0.3.3}"
if [ -d "$upstream" ]; then
    step "proxywhirl 0.3.3's own cache tests through pw_cache.compat ($upstream)"
    PW_UPSTREAM="$upstream" "$venv/bin/python" tests/upstream/run.py
else
    step "proxywhirl 0.3.3's own cache tests: $upstream is not there, skipped"
fi
