"""Fixtures for the builder's Secure Boot tests: one generated KeySet per session (RSA 4096 is not free)."""

from __future__ import annotations

from typing import Any

import pytest

from services.signer.keys import KeySet, load_or_generate


@pytest.fixture(scope="session")
def sb_keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("sb-signer-state"))


@pytest.fixture(scope="session")
def other_sb_keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("sb-other-signer-state"))


@pytest.fixture
def pefile() -> Any:
    """pefile as an independent PE reader (test-only dependency, pefile==2024.8.26); skips when missing."""
    return pytest.importorskip("pefile", reason="pefile (test-only dependency) is not installed")
