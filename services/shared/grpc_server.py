"""One bootstrap for every gRPC service process (STYLE §10).

`serve()` builds an aio server with the standard health service, reflection, OpenTelemetry and our error
interceptor, message-size limits and keepalive; it marks everything SERVING once listening and, on
SIGTERM/SIGINT, flips health to NOT_SERVING before stopping with a grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from services.shared.config import Config
from services.shared.grpc_client import channel_options
from services.shared.interceptors import ServerInterceptor

log = logging.getLogger(__name__)

Registrar = Callable[[aio.Server], None]


@dataclass
class ServiceSpec:
    """What a process serves: full service names (for health/reflection) and how to register them."""

    names: Sequence[str]
    register: Registrar
    # Called after the server stops, for closing clients and stores.
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def create_server(config: Config) -> aio.Server:
    return aio.server(
        interceptors=[aio_server_interceptor(), ServerInterceptor()],  # type: ignore[no-untyped-call]
        options=channel_options(config),
    )


async def serve(spec: ServiceSpec, address: str, config: Config, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or cancellation), then stop gracefully."""
    server = create_server(config)
    spec.register(server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*spec.names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    for name in ("", *spec.names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("listening", extra={"address": address, "services": list(spec.names)})
    if ready is not None:
        ready.set()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await health_servicer.enter_graceful_shutdown()
        await server.stop(config.grpc.shutdown_grace_seconds)
        for hook in spec.on_stop:
            await hook()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
