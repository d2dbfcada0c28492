"""gRPC access for integrators that sit inside the mesh (next to the gateway, not on the internet).

`connect("catalog", "127.0.0.1:50052")` returns an open channel and the generated async stub of that
service. The channel is built by the mesh's own `services.shared.grpc_client.open_channel`, so it has
the same deadlines, retries on UNAVAILABLE, keepalive, tracing and request-ID propagation as the
gateway's. Close the channel when done: `await channel.close()`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal, overload

from grpc import aio

from imagefactory.v1 import (
    builder_pb2_grpc,
    cache_pb2_grpc,
    catalog_pb2_grpc,
    schematic_pb2_grpc,
    signer_pb2_grpc,
)
from services.shared.config import Config, ServiceEndpoints
from services.shared.grpc_client import open_channel

Service = Literal["schematic", "catalog", "builder", "cache", "signer"]

if TYPE_CHECKING:  # the async stub classes exist only in the generated .pyi files
    Stub = (
        schematic_pb2_grpc.SchematicServiceAsyncStub
        | catalog_pb2_grpc.CatalogServiceAsyncStub
        | builder_pb2_grpc.BuilderServiceAsyncStub
        | cache_pb2_grpc.CacheServiceAsyncStub
        | signer_pb2_grpc.SignerServiceAsyncStub
    )

_STUBS = {
    "schematic": schematic_pb2_grpc.SchematicServiceStub,
    "catalog": catalog_pb2_grpc.CatalogServiceStub,
    "builder": builder_pb2_grpc.BuilderServiceStub,
    "cache": cache_pb2_grpc.CacheServiceStub,
    "signer": signer_pb2_grpc.SignerServiceStub,
}


@overload
def connect(
    service: Literal["schematic"], address: str, config: Config | None = None
) -> tuple[aio.Channel, schematic_pb2_grpc.SchematicServiceAsyncStub]: ...
@overload
def connect(
    service: Literal["catalog"], address: str, config: Config | None = None
) -> tuple[aio.Channel, catalog_pb2_grpc.CatalogServiceAsyncStub]: ...
@overload
def connect(
    service: Literal["builder"], address: str, config: Config | None = None
) -> tuple[aio.Channel, builder_pb2_grpc.BuilderServiceAsyncStub]: ...
@overload
def connect(
    service: Literal["cache"], address: str, config: Config | None = None
) -> tuple[aio.Channel, cache_pb2_grpc.CacheServiceAsyncStub]: ...
@overload
def connect(
    service: Literal["signer"], address: str, config: Config | None = None
) -> tuple[aio.Channel, signer_pb2_grpc.SignerServiceAsyncStub]: ...
def connect(service: Service, address: str, config: Config | None = None) -> tuple[aio.Channel, Stub]:
    """Open a channel to `service` at `host:port` and return it with the service's async stub.

    `config` supplies the gRPC settings (message limits, deadlines, keepalive); the defaults otherwise.
    Must be called with an event loop running, as every grpc.aio channel.
    """
    if service not in _STUBS:
        raise ValueError(f"unknown service {service!r}: expected one of {', '.join(_STUBS)}")
    base = config or Config()
    endpoints = dataclasses.replace(base.services or ServiceEndpoints(), **{service: address})
    channel = open_channel(dataclasses.replace(base, services=endpoints), service)
    stub: Stub = _STUBS[service](channel)  # type: ignore[assignment]
    return channel, stub
