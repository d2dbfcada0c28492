"""The server interceptor turns domain errors into statuses, streams included; request IDs travel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gateway.errors import rpc_error_response
from imagefactory.v1 import (
    builder_pb2,
    builder_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    schematic_pb2,
    schematic_pb2_grpc,
)
from services.shared.config import Config, GrpcConfig, ServiceEndpoints
from services.shared.context import request_id_var
from services.shared.errors import InvalidArgument, NotEnabled, NotFound, UpstreamUnavailable
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import create_server
from services.shared.interceptors import REASON_METADATA
from tests.support.ports import free_port


class Schematics(schematic_pb2_grpc.SchematicServiceServicer):
    async def CreateSchematic(self, request: Any, context: Any) -> Any:
        raise RuntimeError("a bug with a secret")

    async def GetSchematic(self, request: Any, context: Any) -> Any:
        if request.id == "echo-request-id":
            return schematic_pb2.GetSchematicResponse(id=request_id_var.get())
        if request.id == "dead-downstream":
            nobody = Config(
                services=ServiceEndpoints(catalog=f"127.0.0.1:{free_port()}"), grpc=GrpcConfig(retry_attempts=1)
            )
            dead = open_channel(nobody, "catalog")
            try:
                stub: Any = catalog_pb2_grpc.CatalogServiceStub(dead)
                await stub.ListVersions(catalog_pb2.ListVersionsRequest(), timeout=5)
            finally:
                await dead.close(None)
        errors = {
            "missing": NotFound('schematic ID "missing" not found'),
            "bad": InvalidArgument("line one\nline two"),
            "enterprise": NotEnabled("owner field is only supported in Enterprise edition"),
        }
        raise errors[request.id]


class Builder(builder_pb2_grpc.BuilderServiceServicer):
    async def EnsureAsset(self, request: Any, context: Any) -> AsyncIterator[Any]:
        if request.path == "echo-request-id":
            yield builder_pb2.EnsureAssetResponse(progress=common_pb2.BuildProgress(step=request_id_var.get()))
            return
        yield builder_pb2.EnsureAssetResponse(progress=common_pb2.BuildProgress(step="fetch"))
        raise UpstreamUnavailable("registry ghcr.io is unreachable")

    async def EnsureInstaller(self, request: Any, context: Any) -> AsyncIterator[Any]:
        raise NotImplementedError
        yield

    async def GetPublicKeys(self, request: Any, context: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
async def channel() -> AsyncIterator[aio.Channel]:
    port = free_port()
    config = Config(services=Config().services.__class__(schematic=f"127.0.0.1:{port}", builder=f"127.0.0.1:{port}"))
    server = create_server(config)
    schematic_pb2_grpc.add_SchematicServiceServicer_to_server(Schematics(), server)
    builder_pb2_grpc.add_BuilderServiceServicer_to_server(Builder(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    channel = open_channel(config, "schematic")
    yield channel
    await channel.close(None)
    await server.stop(None)


def reason(error: aio.AioRpcError) -> str:
    metadata: Any = error.trailing_metadata()
    return str(metadata.get(REASON_METADATA))


@pytest.mark.parametrize(
    ("schematic_id", "code", "message", "why"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, 'schematic ID "missing" not found', "NOT_FOUND"),
        ("bad", grpc.StatusCode.INVALID_ARGUMENT, "line one line two", "INVALID"),
        ("enterprise", grpc.StatusCode.FAILED_PRECONDITION, "owner field is only", "NOT_ENABLED"),
    ],
)
async def test_domain_errors_become_statuses(
    channel: aio.Channel, schematic_id: str, code: grpc.StatusCode, message: str, why: str
) -> None:
    stub: Any = schematic_pb2_grpc.SchematicServiceStub(channel)
    with pytest.raises(aio.AioRpcError) as info:
        await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id=schematic_id))
    assert info.value.code() == code
    assert (info.value.details() or "").startswith(message)
    assert reason(info.value) == why


async def test_unexpected_exceptions_are_internal_without_details(channel: aio.Channel) -> None:
    stub: Any = schematic_pb2_grpc.SchematicServiceStub(channel)
    with pytest.raises(aio.AioRpcError) as info:
        await stub.CreateSchematic(schematic_pb2.CreateSchematicRequest(body=b"x"))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error"


async def test_errors_mid_stream_arrive_after_the_first_messages(channel: aio.Channel) -> None:
    stub: Any = builder_pb2_grpc.BuilderServiceStub(channel)
    received = []
    with pytest.raises(aio.AioRpcError) as info:
        async for message in stub.EnsureAsset(builder_pb2.EnsureAssetRequest(path="metal-amd64.iso")):
            received.append(message)
    assert [m.progress.step for m in received] == ["fetch"]
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "registry ghcr.io is unreachable"


async def test_request_id_travels_from_caller_context(channel: aio.Channel) -> None:
    stub: Any = schematic_pb2_grpc.SchematicServiceStub(channel)
    token = request_id_var.set("req-42")
    try:
        reply = await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id="echo-request-id"))
    finally:
        request_id_var.reset(token)
    assert reply.id == "req-42"


async def test_request_id_travels_on_streaming_calls_too(channel: aio.Channel) -> None:
    # grpc.aio files a multi-type interceptor under its first type only; streams must get the ID as well.
    stub: Any = builder_pb2_grpc.BuilderServiceStub(channel)
    token = request_id_var.set("req-stream")
    try:
        replies = [m async for m in stub.EnsureAsset(builder_pb2.EnsureAssetRequest(path="echo-request-id"))]
    finally:
        request_id_var.reset(token)
    assert [m.progress.step for m in replies] == ["req-stream"]


async def test_a_dead_downstream_stays_a_transport_failure(channel: aio.Channel) -> None:
    """Relayed without a reason, so the gateway answers its neutral 503 instead of gRPC's text."""
    stub: Any = schematic_pb2_grpc.SchematicServiceStub(channel)
    with pytest.raises(aio.AioRpcError) as info:
        await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id="dead-downstream"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    metadata: Any = info.value.trailing_metadata()
    assert metadata.get(REASON_METADATA) is None
    answer = rpc_error_response(info.value)
    assert (answer.status, answer.text) == (503, "service temporarily unavailable\n")
