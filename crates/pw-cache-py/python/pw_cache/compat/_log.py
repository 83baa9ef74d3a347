"""The drop-in's log, where proxywhirl's cache logs: loguru's ``logger`` when loguru is
installed (proxywhirl depends on it, so a proxywhirl application has it and its sinks), else the
standard :mod:`logging` logger ``"pw_cache.compat"``.

Messages use ``{}`` placeholders (loguru's style) and are formatted only when a sink wants them.
No message holds a credential: :func:`shown_url` masks a URL's user information.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

__all__ = ["debug", "error", "info", "shown_url", "warning"]

_STD = logging.getLogger("pw_cache.compat")

_LOGURU: Any
try:
    from loguru import logger as _LOGURU
except ImportError:  # pragma: no cover - loguru comes with proxywhirl
    _LOGURU = None


def _std(level: int, message: str, args: tuple[Any, ...]) -> None:
    if _STD.isEnabledFor(level):
        _STD.log(level, message.format(*args) if args else message)


def debug(message: str, *args: Any) -> None:
    """A DEBUG message (proxywhirl logs each put, hit and miss at this level)."""
    if _LOGURU is not None:
        _LOGURU.debug(message, *args)
    else:
        _std(logging.DEBUG, message, args)


def info(message: str, *args: Any) -> None:
    """An INFO message."""
    if _LOGURU is not None:
        _LOGURU.info(message, *args)
    else:
        _std(logging.INFO, message, args)


def warning(message: str, *args: Any) -> None:
    """A WARNING message."""
    if _LOGURU is not None:
        _LOGURU.warning(message, *args)
    else:
        _std(logging.WARNING, message, args)


def error(message: str, *args: Any) -> None:
    """An ERROR message."""
    if _LOGURU is not None:
        _LOGURU.error(message, *args)
    else:
        _std(logging.ERROR, message, args)


def shown_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()
