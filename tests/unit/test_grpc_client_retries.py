"""Client retries on UNAVAILABLE: on by default, off with `grpc.retry_attempts: 1` (behind Envoy)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from grpc import aio

from imagefactory.v1 import schematic_pb2, schematic_pb2_grpc
from services.shared.config import Config, ConfigError, GrpcConfig, ServiceEndpoints
from services.shared.errors import UpstreamUnavailable
from services.shared.grpc_client import open_channel, service_config
from services.shared.grpc_server import create_server
from tests.support.ports import free_port


class Unavailable(schematic_pb2_grpc.SchematicServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def CreateSchematic(self, request: Any, context: Any) -> Any:
        raise NotImplementedError

    async def GetSchematic(self, request: Any, context: Any) -> Any:
        self.calls += 1
        raise UpstreamUnavailable("registry 127.0.0.1:1 is unreachable")


@pytest.mark.parametrize(("attempts", "calls"), [(4, 4), (2, 2), (1, 1)])
async def test_attempts_per_call(attempts: int, calls: int) -> None:
    port = free_port()
    config = Config(services=ServiceEndpoints(schematic=f"127.0.0.1:{port}"), grpc=GrpcConfig(retry_attempts=attempts))
    servicer = Unavailable()
    server = create_server(config)
    schematic_pb2_grpc.add_SchematicServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    channel = open_channel(config, "schematic")
    try:
        stub = schematic_pb2_grpc.SchematicServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id="x"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert servicer.calls == calls
    finally:
        await channel.close(None)
        await server.stop(None)


def test_no_retry_policy_when_retries_are_off() -> None:
    on = json.loads(service_config(Config()))
    assert all(m["retryPolicy"]["maxAttempts"] == 4 for m in on["methodConfig"])
    off = json.loads(service_config(Config(grpc=GrpcConfig(retry_attempts=1))))
    assert all("retryPolicy" not in m and "timeout" in m for m in off["methodConfig"])


def test_grpc_allows_at_most_five_attempts() -> None:
    with pytest.raises(ConfigError, match=r"grpc\.retry_attempts: gRPC allows at most 5"):
        GrpcConfig(retry_attempts=6)
