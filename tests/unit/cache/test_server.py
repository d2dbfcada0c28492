"""CacheService over an in-process gRPC server: stream framing and error statuses."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from imagefactory.v1 import cache_pb2, cache_pb2_grpc
from services.cache.fs_store import INCOMING, FilesystemStore
from services.cache.server import CacheServicer
from services.shared.interceptors import REASON_METADATA
from tests.support.grpc_server import serving

KEY = "e" * 64


@pytest.fixture
async def cache(store: FilesystemStore) -> AsyncIterator[Any]:
    def register(server: Any) -> None:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(store), server)

    async with serving("cache", register) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def header(key: str = KEY) -> cache_pb2.PutRequest:
    return cache_pb2.PutRequest(header=cache_pb2.PutHeader(key=key, media_type="text/plain", file_name="f.txt"))


async def stream(*messages: cache_pb2.PutRequest) -> AsyncIterator[cache_pb2.PutRequest]:
    for message in messages:
        yield message


async def test_put_stat_read(cache: Any) -> None:
    reply = await cache.Put(stream(header(), cache_pb2.PutRequest(data=b"hello "), cache_pb2.PutRequest(data=b"world")))
    assert (reply.asset.key, reply.asset.size, reply.asset.file_name) == (KEY, 11, "f.txt")
    stat = await cache.Stat(cache_pb2.StatRequest(key=KEY))
    assert stat.asset == reply.asset
    messages = [m async for m in cache.Read(cache_pb2.ReadRequest(key=KEY, offset=6))]
    assert messages[0].asset == reply.asset
    assert b"".join(m.data for m in messages) == b"world"


async def test_empty_asset_still_announces_metadata(cache: Any) -> None:
    await cache.Put(stream(header()))
    messages = [m async for m in cache.Read(cache_pb2.ReadRequest(key=KEY))]
    assert len(messages) == 1 and messages[0].asset.size == 0


@pytest.mark.parametrize(
    "messages",
    [
        (),
        (cache_pb2.PutRequest(data=b"x"),),
        (header(), header()),
        (header("NOT-HEX"),),
    ],
)
async def test_malformed_puts_are_invalid_argument(cache: Any, messages: tuple[cache_pb2.PutRequest, ...]) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await cache.Put(stream(*messages))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_misses_and_bad_ranges(cache: Any) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await cache.Stat(cache_pb2.StatRequest(key=KEY))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await cache.Put(stream(header(), cache_pb2.PutRequest(data=b"abc")))
    with pytest.raises(aio.AioRpcError) as info:
        _ = [m async for m in cache.Read(cache_pb2.ReadRequest(key=KEY, offset=3))]
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_locate_reports_the_verified_file_and_its_identity(cache: Any) -> None:
    reply = await cache.Put(stream(header(), cache_pb2.PutRequest(data=b"located bytes")))
    located = await cache.Locate(cache_pb2.LocateRequest(key=KEY))
    assert located.asset == reply.asset
    path = Path(located.path)
    assert path.is_absolute()
    assert await asyncio.to_thread(path.read_bytes) == b"located bytes"
    st = await asyncio.to_thread(path.stat)
    assert (located.identity.device, located.identity.inode, located.identity.size) == (st.st_dev, st.st_ino, 13)
    assert (located.identity.mtime_ns, located.identity.ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)


async def test_locate_refuses_a_tampered_blob(cache: Any) -> None:
    await cache.Put(stream(header(), cache_pb2.PutRequest(data=b"original!")))
    located = await cache.Locate(cache_pb2.LocateRequest(key=KEY))
    await asyncio.to_thread(Path(located.path).write_bytes, b"tampered!")  # same size, other bytes
    with pytest.raises(aio.AioRpcError) as caught:
        await cache.Locate(cache_pb2.LocateRequest(key=KEY))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_full_cache_volume_is_insufficient_storage(
    store: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while storing: RESOURCE_EXHAUSTED/NO_SPACE (the gateway's 507), nothing left behind."""

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_publish", full)

    def register(server: Any) -> None:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(store), server)

    async with serving("cache", register) as channel:
        stub: Any = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.Put(stream(header(), cache_pb2.PutRequest(data=b"x" * 100)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "no space left on the cache volume" in (caught.value.details() or "")
        trailing: Any = caught.value.trailing_metadata()
        assert (REASON_METADATA, "NO_SPACE") in list(trailing)
    assert list((store.root / INCOMING).iterdir()) == []
