"""Wiring of the cache process: config → signer client → store → servicer → serve."""

from __future__ import annotations

from pathlib import Path

from imagefactory.v1 import cache_pb2, cache_pb2_grpc, signer_pb2_grpc
from services.cache.adapters.signer_client import GrpcSigner
from services.cache.fs_store import FilesystemStore
from services.cache.server import CacheServicer
from services.shared.config import Config
from services.shared.errors import NotEnabled
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name


async def build(config: Config) -> ServiceSpec:
    signer_channel = open_channel(config, "signer")
    signer = GrpcSigner(signer_pb2_grpc.SignerServiceStub(signer_channel))  # type: ignore[arg-type]
    if config.cache.backend != "filesystem":
        raise NotEnabled(f"cache backend {config.cache.backend!r} is not available yet")
    root = Path(config.cache.root) if config.cache.root else config.state_dir / "cache"
    store = FilesystemStore(root, signer, max_asset_bytes=config.cache.max_asset_bytes)
    store.prepare()
    servicer = CacheServicer(store)
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: cache_pb2_grpc.add_CacheServiceServicer_to_server(servicer, server),
        on_stop=[lambda: signer_channel.close(None)],
    )


if __name__ == "__main__":
    run_service("cache", build)
