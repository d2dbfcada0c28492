"""Wiring of the signer process: config → keys → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service
from services.signer.server import SignerServicer

SERVICE = signer_pb2.DESCRIPTOR.services_by_name["SignerService"].full_name


async def build(config: Config) -> ServiceSpec:
    servicer = SignerServicer()
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: signer_pb2_grpc.add_SignerServiceServicer_to_server(servicer, server),
    )


if __name__ == "__main__":
    run_service("signer", build)
