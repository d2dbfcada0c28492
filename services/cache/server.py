"""CacheService servicer: proto ↔ domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from imagefactory.v1 import cache_pb2, cache_pb2_grpc, common_pb2
from services.cache.model import AssetMeta, LocatedBlob, PutRequest
from services.shared.errors import InvalidArgument


class AssetStore(Protocol):
    async def stat(self, key: str) -> AssetMeta: ...

    async def read(self, key: str, offset: int = 0, length: int = 0) -> tuple[AssetMeta, AsyncIterator[bytes]]: ...

    async def put(self, request: PutRequest, chunks: AsyncIterator[bytes]) -> AssetMeta: ...

    async def locate(self, key: str) -> LocatedBlob: ...


def asset_ref(meta: AssetMeta) -> common_pb2.AssetRef:
    return common_pb2.AssetRef(
        key=meta.key,
        size=meta.size,
        digest=meta.digest,
        media_type=meta.media_type,
        file_name=meta.file_name,
        created_unix=meta.created_unix,
    )


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self, store: AssetStore) -> None:
        self._store = store

    async def Stat(self, request: cache_pb2.StatRequest, context: Any) -> cache_pb2.StatResponse:
        return cache_pb2.StatResponse(asset=asset_ref(await self._store.stat(request.key)))

    async def Read(self, request: cache_pb2.ReadRequest, context: Any) -> AsyncIterator[cache_pb2.ReadResponse]:
        meta, chunks = await self._store.read(request.key, request.offset, request.length)
        first = True
        async for chunk in chunks:
            yield cache_pb2.ReadResponse(asset=asset_ref(meta) if first else None, data=chunk)
            first = False
        if first:  # an empty asset still announces its metadata
            yield cache_pb2.ReadResponse(asset=asset_ref(meta))

    async def Locate(self, request: cache_pb2.LocateRequest, context: Any) -> cache_pb2.LocateResponse:
        located = await self._store.locate(request.key)
        device, inode, size, mtime_ns, ctime_ns = located.identity
        return cache_pb2.LocateResponse(
            asset=asset_ref(located.meta),
            path=str(located.path),
            identity=cache_pb2.FileIdentity(
                device=device, inode=inode, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns
            ),
        )

    async def Put(self, request_iterator: AsyncIterator[cache_pb2.PutRequest], context: Any) -> cache_pb2.PutResponse:
        iterator = request_iterator.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            raise InvalidArgument("empty Put: the first message must be a header") from None
        if first.WhichOneof("part") != "header":
            raise InvalidArgument("the first message of a Put must be a header")
        header = first.header

        async def chunks() -> AsyncIterator[bytes]:
            async for part in iterator:
                if part.WhichOneof("part") != "data":
                    raise InvalidArgument("only the first message of a Put may be a header")
                yield part.data

        meta = await self._store.put(
            PutRequest(
                key=header.key, media_type=header.media_type, file_name=header.file_name, expected_size=header.size
            ),
            chunks(),
        )
        return cache_pb2.PutResponse(asset=asset_ref(meta))
