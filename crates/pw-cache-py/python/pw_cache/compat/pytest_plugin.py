"""pytest plugin: ``pytest -p pw_cache.compat.pytest_plugin`` runs proxywhirl code on pw-cache.

Loading this module installs the ``proxywhirl.cache`` alias (see
:func:`pw_cache.compat.install`); given with ``-p`` it loads before any
``conftest.py`` imports proxywhirl.
"""

from __future__ import annotations

from pw_cache.compat import install

install()
