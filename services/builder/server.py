"""BuilderService servicer: proto ↔ domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace

from imagefactory.v1 import builder_pb2, builder_pb2_grpc, common_pb2
from services.builder.adapters.services import CatalogClient, SignerClient
from services.builder.getorbuild import AssetBuilder, StoredAsset
from services.builder.installer_registry import InstallerRegistry
from services.builder.planning import Planner
from services.builder.progress import Progress
from services.shared.errors import NotFound

ARCH_CODES = {"amd64": common_pb2.ARCH_AMD64, "arm64": common_pb2.ARCH_ARM64}


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
    def __init__(
        self,
        planner: Planner,
        assets: AssetBuilder,
        installers: InstallerRegistry,
        catalog: CatalogClient,
        signer: SignerClient,
    ) -> None:
        self._signer = signer
        self._planner = planner
        self._assets = assets
        self._installers = installers
        self._catalog = catalog

    async def EnsureAsset(
        self, request: builder_pb2.EnsureAssetRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureAssetResponse]:
        span = trace.get_current_span()  # the RPC's server span: what a trace viewer lists per request
        span.set_attributes(
            {
                "imagefactory.schematic_id": request.schematic_id,
                "imagefactory.version": request.version,
                "imagefactory.asset_path": request.path,
            }
        )
        plan = await self._planner.plan(request.schematic_id, request.version, request.path)
        span.set_attribute("imagefactory.asset_key", plan.request.key)
        built = False
        async for event in self._assets.ensure(plan.request):
            if isinstance(event, Progress):
                built = True
                yield builder_pb2.EnsureAssetResponse(progress=progress_message(event))
            else:
                span.set_attribute("imagefactory.cache_hit", not built)
                yield builder_pb2.EnsureAssetResponse(asset=asset_ref(event))

    async def GetPublicKeys(
        self, request: builder_pb2.GetPublicKeysRequest, context: Any
    ) -> builder_pb2.GetPublicKeysResponse:
        cosign_key, certificate = await self._signer.public_keys()
        return builder_pb2.GetPublicKeysResponse(
            cosign_public_key_pem=cosign_key, secureboot_certificate_pem=certificate
        )

    async def EnsureInstaller(
        self, request: builder_pb2.EnsureInstallerRequest, context: Any
    ) -> AsyncIterator[builder_pb2.EnsureInstallerResponse]:
        """A tag (`v…`, `latest`) → build/publish if needed; a `sha256-….sig` tag → its record only."""
        version = request.version
        if version.endswith(".sig"):
            published = await self._installers.tagged(request.image_name, request.schematic_id, version)
            if published is None:
                raise NotFound(f"manifest unknown: {version}")
        else:
            if version == "latest":
                version = await self._catalog.latest_stable()
            published = await self._installers.ensure(request.image_name, request.schematic_id, version)
        yield builder_pb2.EnsureInstallerResponse(
            installer=builder_pb2.InstallerRef(
                index=common_pb2.ImageRef(
                    repository=f"{request.image_name}/{request.schematic_id}", tag=version, digest=published.digest
                ),
                index_size=published.size,
                index_media_type=published.media_type,
                manifests=[
                    builder_pb2.PlatformManifest(arch=ARCH_CODES[arch], digest=digest, size=size, media_type=media_type)
                    for arch, digest, size, media_type in published.manifests
                ],
            )
        )
