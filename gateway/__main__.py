"""Run the gateway: config → logging → tracing → metrics → aiohttp."""

from __future__ import annotations

import logging

from aiohttp import web
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

from gateway.app import create_app
from services.shared.logs import setup_logging
from services.shared.metrics import start_metrics_server
from services.shared.process import parse_config
from services.shared.telemetry import setup_tracing, shutdown_tracing
from services.shared.version import VERSION

log = logging.getLogger("gateway")


def main() -> None:
    config = parse_config(None, "Image Factory HTTP gateway")
    setup_logging("gateway", config.log_level, config.log_format)
    provider = setup_tracing("gateway")
    AioHttpServerInstrumentor().instrument(tracer_provider=provider)
    start_metrics_server(config.metrics.address("gateway"))
    host, _, port = config.http.listen.rpartition(":")
    log.info("starting", extra={"service": "gateway", "version": VERSION, "listen": config.http.listen})
    try:
        web.run_app(
            create_app(config),
            host=host.strip("[]"),
            port=int(port),
            print=None,
            access_log=None,
            shutdown_timeout=config.grpc.shutdown_grace_seconds,
        )
    finally:
        shutdown_tracing(provider)


if __name__ == "__main__":
    main()
