"""Wiring of the schematic process: config → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import schematic_pb2, schematic_pb2_grpc
from services.schematic.server import SchematicServicer
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = schematic_pb2.DESCRIPTOR.services_by_name["SchematicService"].full_name


async def build(config: Config) -> ServiceSpec:
    servicer = SchematicServicer()
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: schematic_pb2_grpc.add_SchematicServiceServicer_to_server(servicer, server),
    )


if __name__ == "__main__":
    run_service("schematic", build)
