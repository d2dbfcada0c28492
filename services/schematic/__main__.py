"""Wiring of the schematic process: config → storage → service → servicer → serve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from imagefactory.v1 import schematic_pb2, schematic_pb2_grpc
from services.schematic.server import SchematicServicer
from services.schematic.service import Schematics
from services.schematic.storage import SchematicStorage
from services.schematic.storage.cached import CachedStorage
from services.schematic.storage.filesystem import FilesystemStorage
from services.schematic.storage.registry import RegistryStorage
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.oci import RegistryClient
from services.shared.process import run_service

SERVICE = schematic_pb2.DESCRIPTOR.services_by_name["SchematicService"].full_name


async def build(config: Config) -> ServiceSpec:
    settings = config.schematic
    on_stop: list[Callable[[], Awaitable[None]]] = []
    backend: SchematicStorage
    if settings.backend == "registry":
        oci = settings.oci
        client = RegistryClient(
            oci.registry, insecure=oci.insecure, username=oci.username or None, password=oci.password or None
        )
        on_stop.append(client.close)
        backend = RegistryStorage(client, oci.repository)
    else:
        fs = FilesystemStorage(Path(settings.root) if settings.root else config.state_dir / "schematics")
        fs.prepare()
        backend = fs
    storage = CachedStorage(backend, capacity=settings.cache_capacity, negative_ttl=settings.negative_ttl_seconds)
    servicer = SchematicServicer(Schematics(storage))
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: schematic_pb2_grpc.add_SchematicServiceServicer_to_server(servicer, server),
        on_stop=on_stop,
    )


if __name__ == "__main__":
    run_service("schematic", build)
