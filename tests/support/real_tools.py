"""Skip-or-fail helpers for tests that need real tools or files (STYLE.md §13, mkosi-style)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_tools(*names: str) -> None:
    """Skip when a real tool is missing, except in CI where that is a setup bug (STYLE.md §13)."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        message = f"missing tools: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def require_file(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    message = f"none of {', '.join(map(str, candidates))} exists"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
