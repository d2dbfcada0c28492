"""Wiring of the catalog process: config → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.server import CatalogServicer
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name


async def build(config: Config) -> ServiceSpec:
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(), server),
    )


if __name__ == "__main__":
    run_service("catalog", build)
