"""The filesystem asset store: atomic, signed puts; verified reads; tampering reads as a miss."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.cache.fs_store import INCOMING, FilesystemStore
from services.cache.model import PutRequest
from services.shared.errors import InvalidArgument, NotFound, OutOfRange, PayloadTooLarge
from tests.support.local_signer import LocalSigner
from tests.unit.cache.conftest import MAX_BYTES

KEY = "0123456789abcdef" * 4


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def put(store: FilesystemStore, data: bytes, key: str = KEY) -> None:
    await store.put(PutRequest(key=key, media_type="application/x-iso9660-image", file_name="a.iso"), chunks_of(data))


async def read_all(store: FilesystemStore, key: str = KEY, offset: int = 0, length: int = 0) -> bytes:
    _, chunks = await store.read(key, offset, length)
    return b"".join([c async for c in chunks])


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("image_factory_cache_verification_failures_total", {"reason": reason}) or 0.0


async def test_put_then_stat_and_read(store: FilesystemStore) -> None:
    data = os.urandom(5000)
    await put(store, data)
    meta = await store.stat(KEY)
    assert (meta.size, meta.digest) == (5000, "sha256:" + hashlib.sha256(data).hexdigest())
    assert (meta.media_type, meta.file_name) == ("application/x-iso9660-image", "a.iso")
    assert await read_all(store) == data


@pytest.mark.parametrize(("offset", "length"), [(0, 1), (100, 200), (4999, 0), (4000, 5000), (0, 0)])
async def test_range_reads(store: FilesystemStore, offset: int, length: int) -> None:
    data = os.urandom(5000)
    await put(store, data)
    end = len(data) if length == 0 else offset + length
    assert await read_all(store, offset=offset, length=length) == data[offset:end]


async def test_range_outside_the_asset(store: FilesystemStore) -> None:
    await put(store, b"abc")
    with pytest.raises(OutOfRange):
        await store.read(KEY, 3, 0)
    with pytest.raises(OutOfRange):
        await store.read(KEY, -1, 0)


async def test_empty_asset(store: FilesystemStore) -> None:
    await put(store, b"")
    assert (await store.stat(KEY)).size == 0
    assert await read_all(store) == b""


async def test_missing_key_and_bad_keys(store: FilesystemStore) -> None:
    with pytest.raises(NotFound):
        await store.stat(KEY)
    for bad in ["../../etc", "ABCDEF0123456789", "short", "g" * 64]:
        with pytest.raises(InvalidArgument):
            await store.stat(bad)


async def test_size_limit_and_expected_size(store: FilesystemStore) -> None:
    with pytest.raises(PayloadTooLarge):
        await put(store, b"x" * (MAX_BYTES + 1))
    with pytest.raises(InvalidArgument, match="received 3 bytes, expected 4"):
        await store.put(PutRequest(key=KEY, media_type="a", file_name="b", expected_size=4), chunks_of(b"abc"))
    with pytest.raises(NotFound):
        await store.stat(KEY)


async def test_interrupted_put_leaves_nothing_visible(store: FilesystemStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await store.put(PutRequest(key=KEY, media_type="a", file_name="b"), broken())
    with pytest.raises(NotFound):
        await store.stat(KEY)
    assert list((store.root / INCOMING).iterdir()) == []


async def test_leftovers_of_a_crash_are_removed_on_start(tmp_path: Path, signer: LocalSigner) -> None:
    root = tmp_path / "cache"
    (root / INCOMING / "deadbeef").mkdir(parents=True)
    (root / INCOMING / "deadbeef" / "blob").write_bytes(b"half")
    store = FilesystemStore(root, signer, max_asset_bytes=MAX_BYTES)
    store.prepare()
    assert list((root / INCOMING).iterdir()) == []


async def test_concurrent_puts_of_one_key_publish_one_asset(store: FilesystemStore) -> None:
    data = os.urandom(20000)
    await asyncio.gather(*(put(store, data) for _ in range(8)))
    assert await read_all(store) == data
    assert [p.name for p in (store.root / KEY[:2]).iterdir()] == [KEY]
    assert list((store.root / INCOMING).iterdir()) == []


async def test_assets_survive_a_restart(tmp_path: Path, store: FilesystemStore, signer: LocalSigner) -> None:
    await put(store, b"persistent")
    again = FilesystemStore(store.root, signer, max_asset_bytes=MAX_BYTES)
    again.prepare()
    assert await read_all(again) == b"persistent"


async def test_tampered_blob_is_a_miss(store: FilesystemStore) -> None:
    data = os.urandom(4096)
    await put(store, data)
    assert await read_all(store) == data  # verified once, hash remembered
    before = refusals("blob")
    blob = store.root / KEY[:2] / KEY / "blob"
    blob.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, one bit flipped
    with pytest.raises(NotFound):
        await store.stat(KEY)
    assert refusals("blob") == before + 1


async def test_truncated_or_missing_blob_is_a_miss(store: FilesystemStore) -> None:
    await put(store, b"0123456789")
    blob = store.root / KEY[:2] / KEY / "blob"
    blob.write_bytes(b"01234")
    with pytest.raises(NotFound):
        await store.stat(KEY)
    blob.unlink()
    with pytest.raises(NotFound):
        await store.stat(KEY)


async def test_tampered_metadata_is_a_miss(store: FilesystemStore) -> None:
    await put(store, b"payload")
    meta_path = store.root / KEY[:2] / KEY / "meta.json"
    before = refusals("signature")
    meta_path.write_bytes(meta_path.read_bytes().replace(b"a.iso", b"b.iso"))
    with pytest.raises(NotFound):
        await store.stat(KEY)
    assert refusals("signature") == before + 1
    meta_path.write_bytes(b"{not json")
    with pytest.raises(NotFound):
        await store.stat(KEY)


async def test_signature_by_another_key_is_a_miss(
    tmp_path: Path, store: FilesystemStore, other_signer: LocalSigner
) -> None:
    foreign = FilesystemStore(tmp_path / "foreign", other_signer, max_asset_bytes=MAX_BYTES)
    foreign.prepare()
    await put(foreign, b"same bytes")
    await put(store, b"same bytes")
    ours = store.root / KEY[:2] / KEY / "meta.sig"
    theirs = foreign.root / KEY[:2] / KEY / "meta.sig"
    # Same metadata would need the same timestamp; copy theirs wholesale to be sure it is only the key.
    (store.root / KEY[:2] / KEY / "meta.json").write_bytes((foreign.root / KEY[:2] / KEY / "meta.json").read_bytes())
    ours.write_bytes(theirs.read_bytes())
    with pytest.raises(NotFound):
        await store.stat(KEY)


async def test_signature_for_another_asset_is_a_miss(store: FilesystemStore) -> None:
    other = "f" * 64
    await put(store, b"one")
    await put(store, b"two", key=other)
    (store.root / KEY[:2] / KEY / "meta.sig").write_bytes((store.root / other[:2] / other / "meta.sig").read_bytes())
    with pytest.raises(NotFound):
        await store.stat(KEY)
