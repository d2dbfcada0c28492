"""Cached downloads: sendfile(2) from the cache's verified file, or the gRPC stream when that cannot be used.

A real CacheService (filesystem store, in-process gRPC server) behind the real gateway app; only the
builder is a stand-in that reports the asset as ready.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from imagefactory.v1 import builder_pb2, cache_pb2, cache_pb2_grpc, schematic_pb2
from services.cache.fs_store import FilesystemStore
from services.cache.server import CacheServicer
from services.shared.config import Config, HttpConfig
from tests.support.fakes import FakeBackends, FakeStub, rpc_error
from tests.support.grpc_server import serving
from tests.support.local_signer import LocalSigner

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
BODY = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several socket writes
KEY = hashlib.sha256(BODY).hexdigest()  # stored under its digest, the asset is also an OCI blob
URL = "/image/" + "0" * 64 + "/v1.12.1/metal-amd64.iso"
BLOB_URL = f"/v2/installer/{'0' * 64}/blobs/sha256:{KEY}"


@dataclass
class CountingCache:
    """The real cache stub, counting calls; `locate_hook` may alter Locate's answer."""

    stub: Any
    calls: list[str] = field(default_factory=list)
    locate_hook: Callable[[cache_pb2.LocateResponse], Awaitable[cache_pb2.LocateResponse]] | None = None

    async def Locate(self, request: cache_pb2.LocateRequest, **kwargs: Any) -> cache_pb2.LocateResponse:
        self.calls.append("Locate")
        reply: cache_pb2.LocateResponse = await self.stub.Locate(request, **kwargs)
        return await self.locate_hook(reply) if self.locate_hook else reply

    async def Stat(self, request: cache_pb2.StatRequest, **kwargs: Any) -> cache_pb2.StatResponse:
        self.calls.append("Stat")
        reply: cache_pb2.StatResponse = await self.stub.Stat(request, **kwargs)
        return reply

    def Read(self, request: cache_pb2.ReadRequest, **kwargs: Any) -> Any:
        self.calls.append("Read")
        return self.stub.Read(request, **kwargs)


class ReadyBuilder:
    def __init__(self, asset: Any) -> None:
        self.asset = asset

    def EnsureAsset(self, request: builder_pb2.EnsureAssetRequest, **_: Any) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[Any]:
            yield builder_pb2.EnsureAssetResponse(asset=self.asset)

        return events()


async def schematic_reply() -> schematic_pb2.GetSchematicResponse:
    return schematic_pb2.GetSchematicResponse()


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[CountingCache]:
    store = FilesystemStore(tmp_path / "cache", LocalSigner.generate(tmp_path / "keys"), max_asset_bytes=1 << 24)
    store.prepare()

    def register(server: Any) -> None:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(store), server)

    async with serving("cache", register) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)

        async def parts() -> AsyncIterator[cache_pb2.PutRequest]:
            yield cache_pb2.PutRequest(
                header=cache_pb2.PutHeader(key=KEY, media_type="application/x-iso9660-image", file_name="a.iso")
            )
            yield cache_pb2.PutRequest(data=BODY)

        await stub.Put(parts())
        yield CountingCache(stub)


async def gateway(aiohttp_client: ClientFactory, cache: CountingCache, *, send_files: bool = True) -> Any:
    asset = (await cache.stub.Stat(cache_pb2.StatRequest(key=KEY))).asset
    backends = FakeBackends(
        cache=cache,  # type: ignore[arg-type]
        builder=ReadyBuilder(asset),  # type: ignore[arg-type]
        schematic=FakeStub(GetSchematic=lambda _: schematic_reply()),
    )
    return await aiohttp_client(create_app(Config(http=HttpConfig(send_cache_files=send_files)), backends))


async def test_a_cached_asset_is_sent_from_the_verified_file(aiohttp_client: ClientFactory, cache: Any) -> None:
    client = await gateway(aiohttp_client, cache)
    response = await client.get(URL)
    body = await response.read()
    assert response.status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["ETag"] == f'"sha256:{hashlib.sha256(BODY).hexdigest()}"'
    assert cache.calls == ["Locate"]  # no byte went through gRPC


async def test_ranges_are_sent_from_the_file(aiohttp_client: ClientFactory, cache: Any) -> None:
    client = await gateway(aiohttp_client, cache)
    response = await client.get(URL, headers={"Range": "bytes=1000-1999"})
    assert response.status == 206
    assert await response.read() == BODY[1000:2000]
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(BODY)}"
    suffix = await client.get(URL, headers={"Range": "bytes=-4"})
    assert (suffix.status, await suffix.read()) == (206, b"tail")
    assert cache.calls == ["Locate", "Locate"]


async def test_a_file_changed_after_verification_is_not_sent(aiohttp_client: ClientFactory, cache: Any) -> None:
    async def changed_since(reply: cache_pb2.LocateResponse) -> cache_pb2.LocateResponse:
        reply.identity.ctime_ns += 1  # as if written after the cache checked it
        return reply

    cache.locate_hook = changed_since
    client = await gateway(aiohttp_client, cache)
    response = await client.get(URL)
    assert (response.status, await response.read() == BODY) == (200, True)
    assert cache.calls == ["Locate", "Read"]  # the gRPC path verifies again


async def test_an_unreachable_file_falls_back_to_the_stream(aiohttp_client: ClientFactory, cache: Any) -> None:
    async def elsewhere(reply: cache_pb2.LocateResponse) -> cache_pb2.LocateResponse:
        reply.path = "/nonexistent/cache/on/another/machine/blob"
        return reply

    cache.locate_hook = elsewhere
    client = await gateway(aiohttp_client, cache)
    response = await client.get(URL)
    assert (response.status, await response.read() == BODY) == (200, True)
    assert cache.calls == ["Locate", "Read"]


async def test_a_store_without_files_is_probed_once(aiohttp_client: ClientFactory, cache: Any) -> None:
    async def unimplemented(reply: cache_pb2.LocateResponse) -> cache_pb2.LocateResponse:
        raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "no local files")

    cache.locate_hook = unimplemented
    client = await gateway(aiohttp_client, cache)
    for _ in range(2):
        response = await client.get(URL)
        assert (response.status, await response.read() == BODY) == (200, True)
    assert cache.calls == ["Locate", "Read", "Read"]


async def test_sending_files_can_be_switched_off(aiohttp_client: ClientFactory, cache: Any) -> None:
    client = await gateway(aiohttp_client, cache, send_files=False)
    response = await client.get(URL, headers={"Range": "bytes=5-9"})
    assert (response.status, await response.read()) == (206, BODY[5:10])
    assert cache.calls == ["Read"]


async def test_head_sends_no_body(aiohttp_client: ClientFactory, cache: Any) -> None:
    client = await gateway(aiohttp_client, cache)
    response = await client.head(URL)
    assert (response.status, response.headers["Content-Length"], await response.read()) == (200, str(len(BODY)), b"")


@pytest.mark.parametrize("send_files", [True, False])
async def test_registry_blobs_answer_ranges(aiohttp_client: ClientFactory, cache: Any, send_files: bool) -> None:
    client = await gateway(aiohttp_client, cache, send_files=send_files)
    whole = await client.get(BLOB_URL)
    assert (whole.status, await whole.read() == BODY) == (200, True)
    assert whole.headers["Docker-Content-Digest"] == f"sha256:{KEY}"
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = await client.get(BLOB_URL, headers={"Range": "bytes=1048570-"})
    assert (part.status, await part.read()) == (206, BODY[1048570:])
    assert part.headers["Content-Range"] == f"bytes 1048570-{len(BODY) - 1}/{len(BODY)}"
    assert part.headers["Content-Length"] == str(len(BODY) - 1048570)
    beyond = await client.get(BLOB_URL, headers={"Range": f"bytes={len(BODY)}-"})
    assert (beyond.status, beyond.headers["Content-Range"]) == (416, f"bytes */{len(BODY)}")
    head = await client.head(BLOB_URL, headers={"Range": "bytes=0-9"})  # HEAD ignores ranges
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(BODY)))
