"""Prometheus `/metrics` listener per process (its own port, like the Go factory's :2122)."""

from __future__ import annotations

import logging
from typing import Any

import prometheus_client

log = logging.getLogger(__name__)


def start_metrics_server(address: str) -> Any | None:
    """Serve the default registry on `host:port`; an empty address disables it. Returns the server."""
    if not address:
        return None
    host, _, port = address.rpartition(":")
    server, _thread = prometheus_client.start_http_server(int(port), addr=host.strip("[]"))
    log.info("metrics listening", extra={"address": f"{host}:{server.server_port}"})
    return server
