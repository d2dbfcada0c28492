"""Wiring of the signer process: config → keys → servicer → serve."""

from __future__ import annotations

from pathlib import Path

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service
from services.signer.enrollment import WellKnownCertificates
from services.signer.keys import KeyPaths, load_or_generate
from services.signer.server import SignerServicer

SERVICE = signer_pb2.DESCRIPTOR.services_by_name["SignerService"].full_name


def key_paths(config: Config) -> KeyPaths:
    def optional(value: str) -> Path | None:
        return Path(value) if value else None

    return KeyPaths(
        cosign_key=optional(config.signer.cosign_key_path),
        secureboot_key=optional(config.signer.secureboot_key_path),
        secureboot_cert=optional(config.signer.secureboot_cert_path),
        pcr_key=optional(config.signer.pcr_key_path),
    )


async def build(config: Config) -> ServiceSpec:
    keys = load_or_generate(config.state_dir, key_paths(config))
    well_known = None
    if config.signer.well_known_certificates_dir:
        well_known = WellKnownCertificates.load(Path(config.signer.well_known_certificates_dir))
    servicer = SignerServicer(keys, config.state_dir / "tmp" / "signer", well_known)
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: signer_pb2_grpc.add_SignerServiceServicer_to_server(servicer, server),
    )


if __name__ == "__main__":
    run_service("signer", build)
