"""CacheService servicer: proto ↔ domain only.

Skeleton: the signed store arrives with the signer + cache issue; until then every key is a miss.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import cache_pb2, cache_pb2_grpc
from services.shared.errors import NotFound, Unimplemented


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    async def Stat(self, request: cache_pb2.StatRequest, context: Any) -> cache_pb2.StatResponse:
        raise NotFound(f"asset {request.key!r} not found")

    async def Read(self, request: cache_pb2.ReadRequest, context: Any) -> AsyncIterator[cache_pb2.ReadResponse]:
        raise NotFound(f"asset {request.key!r} not found")
        yield cache_pb2.ReadResponse()  # pragma: no cover - makes this an async generator

    async def Put(self, request_iterator: AsyncIterator[cache_pb2.PutRequest], context: Any) -> cache_pb2.PutResponse:
        raise Unimplemented("storing assets is not implemented yet")
