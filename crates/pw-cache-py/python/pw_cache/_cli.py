"""The ``pw-cache`` console script: the same command as the Rust binary (``docs/cli.md``)."""

from __future__ import annotations

import signal
import sys

from pw_cache import _native


def main() -> None:
    """Runs ``pw-cache`` with this process's arguments and exits with its code."""
    # Ctrl-C ends the command at once, as it does the Rust binary (the command runs in Rust
    # with the GIL released, where Python's KeyboardInterrupt would wait for it to finish).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.exit(_native.cli(["pw-cache", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
