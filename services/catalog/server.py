"""CatalogService servicer: proto ↔ domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2
from services.catalog.upstream import ImageRef, Upstream
from services.shared.errors import InvalidArgument, NotFound
from services.shared.streams import read_chunks

ARCHES = {common_pb2.ARCH_AMD64: "amd64", common_pb2.ARCH_ARM64: "arm64"}


def image_ref(ref: ImageRef) -> common_pb2.ImageRef:
    return common_pb2.ImageRef(
        registry=ref.registry, repository=ref.repository, tag=ref.tag, digest=ref.digest, insecure=ref.insecure
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def ListVersions(
        self, request: catalog_pb2.ListVersionsRequest, context: Any
    ) -> catalog_pb2.ListVersionsResponse:
        if request.include_broken:  # `?broken=true` lists the configured broken versions (spec §2.4)
            return catalog_pb2.ListVersionsResponse(versions=[v.tag for v in self._upstream.broken])
        versions = await self._upstream.versions()
        stable = [v for v in versions if not v.pre]
        return catalog_pb2.ListVersionsResponse(
            versions=[v.tag for v in versions], latest_stable=max(stable).tag if stable else ""
        )

    async def ListExtensions(
        self, request: catalog_pb2.ListExtensionsRequest, context: Any
    ) -> catalog_pb2.ListExtensionsResponse:
        version = await self._upstream.require(request.version)
        return catalog_pb2.ListExtensionsResponse(
            extensions=[
                catalog_pb2.ExtensionInfo(
                    name=e.name, ref=e.ref, digest=e.digest, author=e.author, description=e.description
                )
                for e in await self._upstream.extensions(version)
            ]
        )

    async def ListOverlays(
        self, request: catalog_pb2.ListOverlaysRequest, context: Any
    ) -> catalog_pb2.ListOverlaysResponse:
        version = await self._upstream.require(request.version)
        return catalog_pb2.ListOverlaysResponse(
            overlays=[
                catalog_pb2.OverlayInfo(name=o.name, image=o.image, ref=o.ref, digest=o.digest)
                for o in await self._upstream.overlays(version)
            ]
        )

    async def ListTalosctl(
        self, request: catalog_pb2.ListTalosctlRequest, context: Any
    ) -> catalog_pb2.ListTalosctlResponse:
        version = await self._upstream.require(request.version)
        files, root = await self._upstream.talosctl(version)
        return catalog_pb2.ListTalosctlResponse(
            files=[
                catalog_pb2.TalosctlFile(name=f.name, os=f.os, arch=f.arch, size=(root / f.name).stat().st_size)
                for f in files
                if root is not None
            ]
        )

    async def ReadTalosctl(
        self, request: catalog_pb2.ReadTalosctlRequest, context: Any
    ) -> AsyncIterator[catalog_pb2.ReadTalosctlResponse]:
        version = await self._upstream.require(request.version)
        files, root = await self._upstream.talosctl(version)
        match = next((f for f in files if f.name == request.name), None)
        if match is None or root is None:  # only listed names: nothing else in the image is served
            raise NotFound(f"talosctl file {request.name!r} not found for version {version}")
        path = root / match.name
        info = catalog_pb2.TalosctlFile(name=match.name, os=match.os, arch=match.arch, size=path.stat().st_size)
        first = True
        async for chunk in read_chunks(path):
            yield catalog_pb2.ReadTalosctlResponse(file=info if first else None, data=chunk)
            first = False
        if first:
            yield catalog_pb2.ReadTalosctlResponse(file=info)

    async def Resolve(self, request: catalog_pb2.ResolveRequest, context: Any) -> catalog_pb2.ResolveResponse:
        version = await self._upstream.require(request.version)
        if request.arch not in ARCHES:
            raise InvalidArgument("resolve needs an architecture")
        resolved = await self._upstream.resolve(version, list(request.extensions), request.overlay_name)
        return catalog_pb2.ResolveResponse(
            version=version.tag,
            arch=request.arch,
            imager=image_ref(resolved.imager),
            installer_base=image_ref(resolved.installer_base),
            extensions=[
                catalog_pb2.ResolvedExtension(
                    requested_name=e.requested_name, name=e.entry.name, image=image_ref(e.image)
                )
                for e in resolved.extensions
            ],
            overlay=image_ref(resolved.overlay) if resolved.overlay else None,
        )
