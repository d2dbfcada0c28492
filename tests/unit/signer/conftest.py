"""Shared signer fixtures: one generated KeySet per session (RSA 4096 generation is not free)."""

from __future__ import annotations

import pytest

from services.signer.keys import KeySet, load_or_generate


@pytest.fixture(scope="session")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("signer-state"))


@pytest.fixture(scope="session")
def other_keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("other-signer-state"))
