"""`connect` opens a mesh-configured channel to one service and hands back its generated stub."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from imagefactory.v1 import schematic_pb2, schematic_pb2_grpc
from imagefactory_client.grpc import connect
from services.shared.config import Config
from services.shared.grpc_server import create_server
from tests.support.ports import free_port


class Schematics(schematic_pb2_grpc.SchematicServiceServicer):
    async def CreateSchematic(  # type: ignore[override]
        self, request: schematic_pb2.CreateSchematicRequest, context: aio.ServicerContext[object, object]
    ) -> schematic_pb2.CreateSchematicResponse:
        raise NotImplementedError

    async def GetSchematic(  # type: ignore[override]
        self, request: schematic_pb2.GetSchematicRequest, context: aio.ServicerContext[object, object]
    ) -> schematic_pb2.GetSchematicResponse:
        if request.id != "a" * 64:
            await context.abort(grpc.StatusCode.NOT_FOUND, "schematic not found")
        return schematic_pb2.GetSchematicResponse(canonical_yaml="customization: {}\n")


async def test_connect_returns_a_working_stub() -> None:
    address = f"127.0.0.1:{free_port()}"
    server = create_server(Config())
    schematic_pb2_grpc.add_SchematicServiceServicer_to_server(Schematics(), server)
    server.add_insecure_port(address)
    await server.start()
    channel, stub = connect("schematic", address)
    try:
        reply = await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id="a" * 64))
        assert reply.canonical_yaml == "customization: {}\n"
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.GetSchematic(schematic_pb2.GetSchematicRequest(id="b" * 64))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await channel.close(None)
        await server.stop(None)


async def test_connect_refuses_unknown_services() -> None:
    with pytest.raises(ValueError, match="unknown service 'gateway'"):
        connect("gateway", "127.0.0.1:1")  # type: ignore[call-overload]
