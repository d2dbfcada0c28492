"""BuilderService servicer: proto ↔ domain only.

Skeleton: it checks that the schematic exists (the first hop of every build) and then reports that no
output can be built yet; asset builds arrive with the builder issue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import builder_pb2, builder_pb2_grpc, schematic_pb2, schematic_pb2_grpc
from services.shared.errors import Unimplemented


class BuilderServicer(builder_pb2_grpc.BuilderServiceServicer):
    def __init__(self, schematics: schematic_pb2_grpc.SchematicServiceAsyncStub) -> None:
        self._schematics = schematics

    async def EnsureAsset(
        self, request: builder_pb2.EnsureAssetRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureAssetResponse]:
        await self._schematics.GetSchematic(schematic_pb2.GetSchematicRequest(id=request.schematic_id))
        raise Unimplemented(f"building {request.path} is not implemented yet")
        yield builder_pb2.EnsureAssetResponse()  # pragma: no cover - makes this an async generator

    async def EnsureInstaller(
        self, request: builder_pb2.EnsureInstallerRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureInstallerResponse]:
        raise Unimplemented("installer images are not implemented yet")
        yield builder_pb2.EnsureInstallerResponse()  # pragma: no cover - makes this an async generator
