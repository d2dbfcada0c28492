"""Wiring of the cache process: config → signer client → store → servicer → serve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from imagefactory.v1 import cache_pb2, cache_pb2_grpc, signer_pb2_grpc
from services.cache.adapters.signer_client import GrpcSigner
from services.cache.fs_store import FilesystemStore
from services.cache.registry_store import RegistryStore
from services.cache.server import AssetStore, CacheServicer
from services.cache.signing import RememberingVerifier
from services.shared.config import Config
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import ServiceSpec
from services.shared.oci import RegistryClient
from services.shared.process import run_service

SERVICE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name


async def build(config: Config) -> ServiceSpec:
    signer_channel = open_channel(config, "signer")
    signer = RememberingVerifier(GrpcSigner(signer_pb2_grpc.SignerServiceStub(signer_channel)))  # type: ignore[arg-type]
    on_stop: list[Callable[[], Awaitable[None]]] = [lambda: signer_channel.close(None)]
    store: AssetStore
    if config.cache.backend == "registry":
        oci = config.cache.oci
        client = RegistryClient(
            oci.registry, insecure=oci.insecure, username=oci.username or None, password=oci.password or None
        )
        on_stop.append(client.close)
        registry_store = RegistryStore(
            client,
            oci.repository,
            signer,
            config.state_dir / "cache-spool",
            max_asset_bytes=config.cache.max_asset_bytes,
        )
        registry_store.prepare()
        store = registry_store
    else:
        root = Path(config.cache.root) if config.cache.root else config.state_dir / "cache"
        fs_store = FilesystemStore(root, signer, max_asset_bytes=config.cache.max_asset_bytes)
        fs_store.prepare()
        store = fs_store
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(store), server),
        on_stop=on_stop,
    )


if __name__ == "__main__":
    run_service("cache", build)
