"""Run servicers on an in-process gRPC server (our real bootstrap and interceptors) for a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from grpc import aio

from services.shared.config import Config, ServiceEndpoints
from services.shared.grpc_client import open_channel
from services.shared.grpc_server import create_server
from tests.support.ports import free_port


@asynccontextmanager
async def serving(service: str, register: Callable[[aio.Server], None]) -> AsyncIterator[aio.Channel]:
    """Start a server with `register`, yield a client channel configured as `service` would be reached."""
    port = free_port()
    config = Config(services=ServiceEndpoints(**{service: f"127.0.0.1:{port}"}))
    server = create_server(config)
    register(server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    channel = open_channel(config, service)
    try:
        yield channel
    finally:
        await channel.close(None)
        await server.stop(None)
