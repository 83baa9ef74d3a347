"""pw_cache.compat.install(): `import proxywhirl.cache` gives pw_cache.compat's modules.

Each check runs in a fresh interpreter (the alias must be installed before proxywhirl is
imported). Needs proxywhirl 0.3.3 installed in the same environment; skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("proxywhirl") is None,
    reason="proxywhirl 0.3.3 is not installed in this environment",
)


def _python_dir() -> Path:
    """The directory holding the `pw_cache` this process imports (else the source tree's)."""
    spec = importlib.util.find_spec("pw_cache")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).parent
    return Path(__file__).resolve().parents[1] / "python"


PYTHON_DIR = _python_dir()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_install_aliases_every_cache_module_and_loads_no_proxywhirl_cache_code() -> None:
    result = run_python(
        """
        import sys
        import pw_cache.compat as compat
        compat.install()
        import proxywhirl
        import proxywhirl.cache
        import proxywhirl.cache.models, proxywhirl.cache.manager
        import proxywhirl.cache.tiers, proxywhirl.cache.crypto
        for name, target in compat.ALIASES.items():
            assert sys.modules[name] is sys.modules[target], name
        assert proxywhirl.cache.CacheManager is sys.modules["pw_cache.compat.manager"].CacheManager
        from proxywhirl.cache.models import CacheEntry
        assert CacheEntry.__module__ == "pw_cache.compat.models"
        loaded = [
            getattr(m, "__file__", None) or "" for m in list(sys.modules.values())
        ]
        bad = [f for f in loaded if "proxywhirl/cache/" in f.replace("\\\\", "/")]
        assert not bad, bad
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_health_status_is_proxywhirls_own() -> None:
    result = run_python(
        """
        import pw_cache.compat
        pw_cache.compat.install()
        from proxywhirl.models import HealthStatus
        from proxywhirl.cache.models import HealthStatus as CacheHealthStatus
        assert HealthStatus is CacheHealthStatus
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr


def test_install_is_idempotent() -> None:
    result = run_python(
        """
        import sys
        import pw_cache.compat as compat
        compat.install(); compat.install()
        assert compat.installed()
        finders = [f for f in sys.meta_path if type(f).__name__ == "_AliasFinder"]
        assert len(finders) == 1, finders
        import proxywhirl.cache
        compat.install()
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr


def test_install_after_proxywhirl_cache_was_imported_is_an_error() -> None:
    result = run_python(
        """
        import proxywhirl.cache
        import pw_cache.compat as compat
        try:
            compat.install()
        except RuntimeError as error:
            assert "proxywhirl.cache" in str(error), error
            print("refused")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_pytest_plugin_installs_at_import() -> None:
    result = run_python(
        """
        import pw_cache.compat.pytest_plugin
        import pw_cache.compat as compat
        assert compat.installed()
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
