"""Wiring of the builder process: config → clients → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import builder_pb2, builder_pb2_grpc, schematic_pb2_grpc
from services.builder.server import BuilderServicer
from services.shared.config import Config
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


async def build(config: Config) -> ServiceSpec:
    schematic_channel = open_channel(config, "schematic")
    servicer = BuilderServicer(schematic_pb2_grpc.SchematicServiceStub(schematic_channel))  # type: ignore[arg-type]
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: builder_pb2_grpc.add_BuilderServiceServicer_to_server(servicer, server),
        on_stop=[lambda: schematic_channel.close(None)],
    )


if __name__ == "__main__":
    run_service("builder", build)
