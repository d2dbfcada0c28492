"""Get-or-build when the scratch volume is full: a clean NO_SPACE error, nothing stored, no scratch left."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from services.builder.getorbuild import AssetBuilder, AssetRequest, StoredAsset
from services.builder.progress import ProgressFeed
from services.shared.errors import InsufficientStorage, Internal
from services.shared.tools import ToolFailed


class EmptyCache:
    def __init__(self) -> None:
        self.puts: list[str] = []

    async def stat(self, key: str) -> StoredAsset | None:
        return None

    async def put(self, key: str, media_type: str, file_name: str, path: Path) -> StoredAsset:
        self.puts.append(key)
        return StoredAsset(key, 0, "sha256:0", media_type, file_name, 0)


def failing(error: BaseException) -> AssetRequest:
    async def build(work: Path, feed: ProgressFeed) -> Path:
        (work / "partial").write_bytes(b"x")
        raise error

    return AssetRequest(
        key="k" * 64, kind="iso", media_type="application/x-iso9660-image", file_name="a.iso", build=build
    )


async def outcome(tmp_path: Path, error: BaseException) -> tuple[BaseException, EmptyCache]:
    cache = EmptyCache()
    builder = AssetBuilder(cache, tmp_path / "work", max_concurrency=1, timeout=60)
    builder.prepare()
    with pytest.raises(Exception) as info:
        _ = [event async for event in builder.ensure(failing(error))]
    assert list((tmp_path / "work").iterdir()) == []
    return info.value, cache


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        ToolFailed("xorriso", 5, b"libburn : SORRY : Cannot write: No space left on device\n"),
    ],
    ids=["enospc", "edquot", "tool"],
)
async def test_a_full_scratch_volume_is_insufficient_storage(tmp_path: Path, error: BaseException) -> None:
    raised, cache = await outcome(tmp_path, error)
    assert isinstance(raised, InsufficientStorage)
    assert raised.reason == "NO_SPACE"
    assert raised.message == "building a.iso failed: no space left on the build volume"
    assert cache.puts == []


@pytest.mark.parametrize(
    "error",
    [OSError(errno.EIO, "Input/output error"), ToolFailed("xorriso", 1, b"bad option\n")],
    ids=["eio", "tool"],
)
async def test_other_failures_stay_what_they_are(tmp_path: Path, error: BaseException) -> None:
    raised, _ = await outcome(tmp_path, error)
    assert raised is error or isinstance(raised, Internal)
    assert not isinstance(raised, InsufficientStorage)


def test_prepare_keeps_a_scratch_root_that_is_a_mount_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rmtree cannot remove a mount point (EBUSY): its contents go, the directory stays, and that is fine."""
    root = tmp_path / "work"
    (root / "build-old").mkdir(parents=True)
    (root / "build-old" / "partial.iso").write_bytes(b"x")
    real_rmtree = shutil.rmtree

    def rmtree_like_a_mount_point(path: Path, ignore_errors: bool = False) -> None:
        for child in Path(path).iterdir():
            real_rmtree(child, ignore_errors=ignore_errors)

    monkeypatch.setattr(shutil, "rmtree", rmtree_like_a_mount_point)
    AssetBuilder(EmptyCache(), root, max_concurrency=1, timeout=60).prepare()
    assert root.is_dir() and list(root.iterdir()) == []
