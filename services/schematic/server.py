"""SchematicService servicer: proto ↔ domain only."""

from __future__ import annotations

from typing import Any

from imagefactory.v1 import schematic_pb2, schematic_pb2_grpc
from services.shared.errors import NotFound, Unimplemented


class SchematicServicer(schematic_pb2_grpc.SchematicServiceServicer):
    async def CreateSchematic(
        self, request: schematic_pb2.CreateSchematicRequest, context: Any
    ) -> schematic_pb2.CreateSchematicResponse:
        raise Unimplemented("creating schematics is not implemented yet")

    async def GetSchematic(
        self, request: schematic_pb2.GetSchematicRequest, context: Any
    ) -> schematic_pb2.GetSchematicResponse:
        raise NotFound(f'schematic ID "{request.id}" not found')
