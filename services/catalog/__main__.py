"""Wiring of the catalog process: config → registry client + verifier → upstream → servicer → serve."""

from __future__ import annotations

from pathlib import Path

from imagefactory.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.server import CatalogServicer
from services.catalog.upstream import Upstream
from services.catalog.verify import SignatureConfig, Verifier
from services.shared.config import ArtifactsConfig, Config, ConfigError
from services.shared.grpc_server import ServiceSpec
from services.shared.oci import RegistryClient
from services.shared.process import run_service

SERVICE = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name


def verifier(settings: ArtifactsConfig) -> Verifier:
    signature = settings.signature
    public_key = None
    if signature.public_key_file:
        try:
            public_key = Path(signature.public_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"artifacts.signature.public_key_file {signature.public_key_file}: {exc.strerror}"
            ) from None
    return Verifier.from_config(
        SignatureConfig(
            disabled=signature.disabled,
            subject_regexp=signature.subject_regexp,
            issuer=signature.issuer,
            issuer_regexp=signature.issuer_regexp,
            public_key_pem=public_key,
            public_key_hash_algo=signature.public_key_hash_algo,
        )
    )


async def build(config: Config) -> ServiceSpec:
    settings = config.artifacts
    client = RegistryClient(
        settings.registry,
        insecure=settings.insecure,
        username=settings.username or None,
        password=settings.password or None,
    )
    upstream = Upstream(client, settings, verifier(settings), config.state_dir / "catalog")
    servicer = CatalogServicer(upstream)
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server),
        on_stop=[client.close],
    )


if __name__ == "__main__":
    run_service("catalog", build)
