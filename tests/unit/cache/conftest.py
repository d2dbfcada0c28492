"""Store fixtures: every backend gets the same tests (one parametrized `store` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cache.fs_store import FilesystemStore
from tests.support.local_signer import LocalSigner

MAX_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> LocalSigner:
    return LocalSigner.generate(tmp_path_factory.mktemp("cache-signer"))


@pytest.fixture(scope="session")
def other_signer(tmp_path_factory: pytest.TempPathFactory) -> LocalSigner:
    return LocalSigner.generate(tmp_path_factory.mktemp("other-signer"))


@pytest.fixture
def store(tmp_path: Path, signer: LocalSigner) -> FilesystemStore:
    store = FilesystemStore(tmp_path / "cache", signer, max_asset_bytes=MAX_BYTES)
    store.prepare()
    return store
