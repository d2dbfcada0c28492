"""The `main()` of every service process: config → logging → tracing → metrics → serve."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.shared.config import Config, ConfigError, load_config
from services.shared.errors import FactoryError
from services.shared.grpc_server import ServiceSpec, serve
from services.shared.logs import setup_logging
from services.shared.metrics import start_metrics_server
from services.shared.telemetry import setup_tracing, shutdown_tracing
from services.shared.version import VERSION

log = logging.getLogger(__name__)

SpecBuilder = Callable[[Config], Awaitable[ServiceSpec]]


def parse_config(argv: list[str] | None, description: str) -> Config:
    """`--config FILE` (else $IF_CONFIG) plus IF_… variables; exits 2 with one line when invalid."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, default=None, help="YAML configuration file")
    args = parser.parse_args(argv)
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_service(name: str, build: SpecBuilder, argv: list[str] | None = None) -> None:
    """Run one gRPC service process until SIGTERM/SIGINT."""
    config = parse_config(argv, f"Image Factory {name} service")
    setup_logging(name, config.log_level, config.log_format)
    provider = setup_tracing(name)
    start_metrics_server(config.metrics.address(name))

    async def main() -> None:
        spec = await build(config)
        await serve(spec, config.services.address(name), config)

    log.info("starting", extra={"service": name, "version": VERSION})
    try:
        asyncio.run(main())
    except FactoryError as exc:  # e.g. unreadable keys: one clear line, no traceback
        log.error("startup failed", extra={"error": exc.message})
        print(f"{name}: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        shutdown_tracing(provider)
