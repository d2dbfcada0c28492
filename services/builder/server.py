"""BuilderService servicer: proto ↔ domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import builder_pb2, builder_pb2_grpc, common_pb2
from services.builder.getorbuild import AssetBuilder, StoredAsset
from services.builder.planning import Planner
from services.builder.progress import Progress
from services.shared.errors import Unimplemented


def asset_ref(stored: StoredAsset) -> common_pb2.AssetRef:
    return common_pb2.AssetRef(
        key=stored.key,
        size=stored.size,
        digest=stored.digest,
        media_type=stored.media_type,
        file_name=stored.file_name,
        created_unix=stored.created_unix,
    )


def progress_message(event: Progress) -> common_pb2.BuildProgress:
    return common_pb2.BuildProgress(
        step=event.step, message=event.message, fraction=event.fraction, elapsed_seconds=event.elapsed_seconds
    )


class BuilderServicer(builder_pb2_grpc.BuilderServiceServicer):
    def __init__(self, planner: Planner, assets: AssetBuilder) -> None:
        self._planner = planner
        self._assets = assets

    async def EnsureAsset(
        self, request: builder_pb2.EnsureAssetRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureAssetResponse]:
        plan = await self._planner.plan(request.schematic_id, request.version, request.path)
        async for event in self._assets.ensure(plan.request):
            if isinstance(event, Progress):
                yield builder_pb2.EnsureAssetResponse(progress=progress_message(event))
            else:
                yield builder_pb2.EnsureAssetResponse(asset=asset_ref(event))

    async def EnsureInstaller(
        self, request: builder_pb2.EnsureInstallerRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureInstallerResponse]:
        raise Unimplemented("installer images are not implemented yet")
        yield builder_pb2.EnsureInstallerResponse()  # pragma: no cover - makes this an async generator
