"""Wiring of the builder process: config → clients → planner + get-or-build → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import (
    builder_pb2,
    builder_pb2_grpc,
    cache_pb2_grpc,
    catalog_pb2_grpc,
    schematic_pb2_grpc,
    signer_pb2_grpc,
)
from services.builder.adapters.images import ImageStore
from services.builder.adapters.registry_images import RegistryImageRepository
from services.builder.adapters.secureboot_signer import GrpcSigner
from services.builder.adapters.services import CacheClient, CatalogClient, SchematicsClient, SignerClient
from services.builder.enhance import FactorySettings
from services.builder.getorbuild import AssetBuilder
from services.builder.installer_registry import InstallerRegistry
from services.builder.installer_store import EmbeddedImageRepository, ImageRepository
from services.builder.planning import Planner
from services.builder.server import BuilderServicer
from services.shared.config import Config
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import ServiceSpec
from services.shared.oci import RegistryClient
from services.shared.process import run_service

SERVICE = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


async def build(config: Config) -> ServiceSpec:
    channels = {name: open_channel(config, name) for name in ("schematic", "catalog", "cache", "signer")}
    stubs: dict[str, object] = {
        "schematic": schematic_pb2_grpc.SchematicServiceStub(channels["schematic"]),
        "catalog": catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
        "cache": cache_pb2_grpc.CacheServiceStub(channels["cache"]),
        "signer": signer_pb2_grpc.SignerServiceStub(channels["signer"]),
    }
    root = config.state_dir / "builder"
    images = ImageStore(root / "images")
    settings = FactorySettings(
        secureboot_enabled=True,  # the signer always has a Secure Boot key (configured or generated)
        external_url=config.http.external_url,
        installer_image=config.artifacts.components.installer,
        installer_base_image=config.artifacts.components.installer_base,
    )
    catalog = CatalogClient(stubs["catalog"])  # type: ignore[arg-type]
    cache = CacheClient(stubs["cache"])  # type: ignore[arg-type]
    planner = Planner(
        SchematicsClient(stubs["schematic"]),  # type: ignore[arg-type]
        catalog,
        images,
        settings,
        GrpcSigner(stubs["signer"]),  # type: ignore[arg-type]
    )
    assets = AssetBuilder(
        cache,
        root / "work",
        max_concurrency=config.builder.max_concurrency,
        timeout=config.builder.build_timeout_seconds,
    )
    assets.prepare()
    signer = SignerClient(stubs["signer"])  # type: ignore[arg-type]
    repository, registry_client = installer_repository(config, cache)
    installers = InstallerRegistry(repository, cache, signer, planner, assets)
    servicer = BuilderServicer(planner, assets, installers, catalog, signer)

    async def close() -> None:
        await images.close()
        if registry_client is not None:
            await registry_client.close()
        for channel in channels.values():
            await channel.close(None)

    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: builder_pb2_grpc.add_BuilderServiceServicer_to_server(servicer, server),
        on_stop=[close],
    )


def installer_repository(config: Config, cache: CacheClient) -> tuple[ImageRepository, RegistryClient | None]:
    """Where installer images are published (spec §9.1): the embedded cache, or a real registry."""
    internal = config.installer.internal
    if config.installer.embedded:
        # Signatures then name `<factory host>/<image>/<schematic>`, what clients pull (spec §9.4).
        identity = config.http.external_url.split("://", 1)[-1].rstrip("/")
        return EmbeddedImageRepository(cache, identity), None
    client = RegistryClient(
        internal.registry,
        insecure=internal.insecure,
        username=internal.username or None,
        password=internal.password or None,
    )
    return RegistryImageRepository(client, internal.registry, internal.repository), client


if __name__ == "__main__":
    run_service("builder", build)
