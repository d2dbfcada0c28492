"""gRPC clients of the gateway: one channel per service, stubs, and a readiness probe."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imagefactory.v1 import (
    builder_pb2_grpc,
    cache_pb2_grpc,
    catalog_pb2_grpc,
    schematic_pb2_grpc,
)
from services.shared.config import SERVICE_NAMES, Config
from services.shared.grpc_client import open_channel

READINESS_TIMEOUT_SECONDS = 1.0
# Every service but the signer: only the builder and the cache may reach it (deploy/k8s NetworkPolicies).
GATEWAY_PEERS = tuple(name for name in SERVICE_NAMES if name != "signer")


@dataclass
class Backends:
    """Stubs for every service. Only this module knows how they are reached."""

    channels: dict[str, aio.Channel] = field(default_factory=dict)

    @classmethod
    def connect(cls, config: Config) -> Backends:
        # Bounded windows: the gateway relays asset streams to HTTP clients of any speed (memory, see
        # tests/bench/test_gateway_rss.py).
        return cls(channels={name: open_channel(config, name, bounded_windows=True) for name in GATEWAY_PEERS})

    @property
    def schematic(self) -> schematic_pb2_grpc.SchematicServiceAsyncStub:
        return schematic_pb2_grpc.SchematicServiceStub(self.channels["schematic"])  # type: ignore[return-value]

    @property
    def catalog(self) -> catalog_pb2_grpc.CatalogServiceAsyncStub:
        return catalog_pb2_grpc.CatalogServiceStub(self.channels["catalog"])  # type: ignore[return-value]

    @property
    def builder(self) -> builder_pb2_grpc.BuilderServiceAsyncStub:
        return builder_pb2_grpc.BuilderServiceStub(self.channels["builder"])  # type: ignore[return-value]

    @property
    def cache(self) -> cache_pb2_grpc.CacheServiceAsyncStub:
        return cache_pb2_grpc.CacheServiceStub(self.channels["cache"])  # type: ignore[return-value]

    async def _serving(self, name: str) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channels[name])
        try:
            # wait_for_ready: a channel in reconnect backoff gets the whole timeout to come back.
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=READINESS_TIMEOUT_SECONDS, wait_for_ready=True
            )
        except aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def not_ready(self) -> list[str]:
        """Names of services that do not report SERVING right now (checked in parallel)."""
        names = list(self.channels)
        results = await asyncio.gather(*(self._serving(n) for n in names))
        return [n for n, ok in zip(names, results, strict=True) if not ok]

    async def close(self) -> None:
        await asyncio.gather(*(ch.close(None) for ch in self.channels.values()))
