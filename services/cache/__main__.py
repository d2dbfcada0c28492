"""Wiring of the cache process: config → servicer → serve."""

from __future__ import annotations

from imagefactory.v1 import cache_pb2, cache_pb2_grpc
from services.cache.server import CacheServicer
from services.shared.config import Config
from services.shared.grpc_server import ServiceSpec
from services.shared.process import run_service

SERVICE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name


async def build(config: Config) -> ServiceSpec:
    return ServiceSpec(
        names=[SERVICE],
        register=lambda server: cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(), server),
    )


if __name__ == "__main__":
    run_service("cache", build)
