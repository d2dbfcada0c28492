"""Wiring of the builder process: config → clients → planner + get-or-build → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import (
    builder_pb2,
    builder_pb2_grpc,
    cache_pb2_grpc,
    catalog_pb2_grpc,
    schematic_pb2_grpc,
)
from services.builder.adapters.images import ImageStore
from services.builder.adapters.services import CacheClient, CatalogClient, SchematicsClient
from services.builder.enhance import FactorySettings
from services.builder.getorbuild import AssetBuilder
from services.builder.planning import Planner
from services.builder.server import BuilderServicer
from services.shared.config import Config
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


async def build(config: Config) -> ServiceSpec:
    channels = {name: open_channel(config, name) for name in ("schematic", "catalog", "cache")}
    stubs: dict[str, object] = {
        "schematic": schematic_pb2_grpc.SchematicServiceStub(channels["schematic"]),
        "catalog": catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
        "cache": cache_pb2_grpc.CacheServiceStub(channels["cache"]),
    }
    root = config.state_dir / "builder"
    images = ImageStore(root / "images")
    settings = FactorySettings(
        external_url=config.http.external_url,
        installer_image=config.artifacts.components.installer,
        installer_base_image=config.artifacts.components.installer_base,
    )
    planner = Planner(
        SchematicsClient(stubs["schematic"]),  # type: ignore[arg-type]
        CatalogClient(stubs["catalog"]),  # type: ignore[arg-type]
        images,
        settings,
    )
    assets = AssetBuilder(
        CacheClient(stubs["cache"]),  # type: ignore[arg-type]
        root / "work",
        max_concurrency=config.builder.max_concurrency,
        timeout=config.builder.build_timeout_seconds,
    )
    assets.prepare()
    servicer = BuilderServicer(planner, assets)

    async def close() -> None:
        await images.close()
        for channel in channels.values():
            await channel.close(None)

    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: builder_pb2_grpc.add_BuilderServiceServicer_to_server(servicer, server),
        on_stop=[close],
    )


if __name__ == "__main__":
    run_service("builder", build)
