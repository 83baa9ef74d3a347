"""A drop-in for ``proxywhirl.cache`` (proxywhirl 0.3.3) running on pw-cache.

Call :func:`install` before anything imports ``proxywhirl``: from then on
``import proxywhirl.cache`` (and ``proxywhirl.cache.models``, ``.manager``,
``.tiers``, ``.crypto``) gives this package's modules, and none of
proxywhirl's own cache code is loaded. For pytest, load the plugin early with
``-p pw_cache.compat.pytest_plugin``.

The aliasing is lazy: a :data:`sys.meta_path` finder answers for the
``proxywhirl.cache`` names when they are first imported. Nothing is put in
:data:`sys.modules` ahead of time, so the compat modules may themselves
import ``proxywhirl.models`` (for ``HealthStatus``) without meeting a cycle.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIASES", "install", "installed"]

#: Module names of proxywhirl 0.3.3's cache package and what they resolve to.
ALIASES: dict[str, str] = {
    "proxywhirl.cache": "pw_cache.compat.cache",
    "proxywhirl.cache.models": "pw_cache.compat.models",
    "proxywhirl.cache.manager": "pw_cache.compat.manager",
    "proxywhirl.cache.tiers": "pw_cache.compat.tiers",
    "proxywhirl.cache.crypto": "pw_cache.compat.crypto",
}

_install_lock = threading.Lock()


class _AliasLoader(importlib.abc.Loader):
    """Loads an aliased name by importing its target and handing that module back."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        # The target module ran when create_module imported it.
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder answering for the names in :data:`ALIASES`."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        alias_target = ALIASES.get(fullname)
        if alias_target is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(alias_target),
            is_package=fullname == "proxywhirl.cache",
        )


def _finder() -> _AliasFinder | None:
    for finder in sys.meta_path:
        if isinstance(finder, _AliasFinder):
            return finder
    return None


def installed() -> bool:
    """Whether :func:`install` has run in this interpreter."""
    return _finder() is not None


def install() -> None:
    """Make ``proxywhirl.cache`` and its submodules resolve to ``pw_cache.compat``.

    Idempotent. Raises :class:`RuntimeError` when proxywhirl's own cache
    package (or one of its submodules) was already imported: modules holding
    references to it could not be redirected any more.
    """
    with _install_lock:
        if _finder() is not None:
            return
        already = sorted(
            name
            for name in ALIASES
            if name in sys.modules and getattr(sys.modules[name], "__name__", None) != ALIASES[name]
        )
        if already:
            raise RuntimeError(
                "pw_cache.compat.install() must run before proxywhirl.cache is imported; "
                f"already imported: {', '.join(already)}. Call it first thing (or load "
                "pytest with -p pw_cache.compat.pytest_plugin)."
            )
        sys.meta_path.insert(0, _AliasFinder())
