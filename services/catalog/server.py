"""CatalogService servicer: proto ↔ domain only.

Skeleton: upstream discovery and verification arrive with the catalog issue; until then the catalog
knows no versions, which is a true answer for an unconfigured upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import catalog_pb2, catalog_pb2_grpc
from services.shared.errors import Unimplemented


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    async def ListVersions(
        self, request: catalog_pb2.ListVersionsRequest, context: Any
    ) -> catalog_pb2.ListVersionsResponse:
        return catalog_pb2.ListVersionsResponse(versions=[], latest_stable="")

    async def ListExtensions(
        self, request: catalog_pb2.ListExtensionsRequest, context: Any
    ) -> catalog_pb2.ListExtensionsResponse:
        raise Unimplemented("extension catalogs are not implemented yet")

    async def ListOverlays(
        self, request: catalog_pb2.ListOverlaysRequest, context: Any
    ) -> catalog_pb2.ListOverlaysResponse:
        raise Unimplemented("overlay catalogs are not implemented yet")

    async def ListTalosctl(
        self, request: catalog_pb2.ListTalosctlRequest, context: Any
    ) -> catalog_pb2.ListTalosctlResponse:
        raise Unimplemented("talosctl listings are not implemented yet")

    async def ReadTalosctl(
        self, request: catalog_pb2.ReadTalosctlRequest, context: Any
    ) -> AsyncIterator[catalog_pb2.ReadTalosctlResponse]:
        raise Unimplemented("talosctl downloads are not implemented yet")
        yield catalog_pb2.ReadTalosctlResponse()  # pragma: no cover - makes this an async generator

    async def Resolve(self, request: catalog_pb2.ResolveRequest, context: Any) -> catalog_pb2.ResolveResponse:
        raise Unimplemented("resolving build inputs is not implemented yet")
