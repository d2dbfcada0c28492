"""Fixtures for the UKI/ISO unit tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def pefile() -> Any:
    """pefile as an independent PE reader (test-only dependency, pefile==2024.8.26); skips when missing."""
    return pytest.importorskip("pefile", reason="pefile (test-only dependency) is not installed")
