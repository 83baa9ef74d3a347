"""The quickstarts of docs/python.md and the README run as written."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize(
    "doc", [ROOT / "docs" / "python.md", ROOT / "README.md", ROOT / "crates/pw-cache-py/README.md"]
)
def test_quickstart_runs(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROXYWHIRL_CACHE_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("PROXYWHIRL_CACHE_KEY_PREVIOUS", raising=False)
    quickstart = python_blocks(doc)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(quickstart, str(doc), "exec"), {})
    printed = out.getvalue()
    assert "http://1.2.3.4:8080" in printed
    assert "s3cr3t" not in printed.splitlines()[0]
    assert os.path.isdir(tmp_path / "cache")
