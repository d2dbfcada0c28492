"""Client channels to the other services: deadlines, retries on UNAVAILABLE, tracing, request IDs."""

from __future__ import annotations

import json
from typing import Any

from grpc import aio
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from services.shared.config import Config
from services.shared.interceptors import request_id_interceptors

# Streaming RPCs that may legitimately run for a long time (builds, big transfers).
LONG_RUNNING = (
    ("imagefactory.v1.BuilderService", "EnsureAsset"),
    ("imagefactory.v1.BuilderService", "EnsureInstaller"),
    ("imagefactory.v1.CacheService", "Read"),
    ("imagefactory.v1.CacheService", "Put"),
    ("imagefactory.v1.SignerService", "SignPE"),
    ("imagefactory.v1.CatalogService", "ReadTalosctl"),
    ("imagefactory.v1.CatalogService", "Resolve"),
)


def retry_policy(attempts: int) -> dict[str, Any]:
    return {
        "maxAttempts": attempts,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }


def service_config(config: Config) -> str:
    """gRPC service config: a default deadline, a long one for streams, retries for UNAVAILABLE."""
    short: dict[str, Any] = {"name": [{}], "timeout": f"{config.grpc.deadline_seconds:g}s"}
    long: dict[str, Any] = {
        "name": [{"service": s, "method": m} for s, m in LONG_RUNNING],
        "timeout": f"{config.grpc.stream_deadline_seconds:g}s",
    }
    if config.grpc.retry_attempts > 1:
        for method in (short, long):
            method["retryPolicy"] = retry_policy(config.grpc.retry_attempts)
    return json.dumps({"methodConfig": [short, long]})


def channel_options(config: Config) -> list[tuple[str, Any]]:
    """Options shared by servers and clients: message limits and keepalive."""
    keepalive_ms = int(config.grpc.keepalive_seconds * 1000)
    return [
        ("grpc.max_send_message_length", config.grpc.max_message_bytes),
        ("grpc.max_receive_message_length", config.grpc.max_message_bytes),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        # Servers must accept the clients' keepalive pings, or they answer GOAWAY "too_many_pings".
        ("grpc.http2.min_ping_interval_without_data_ms", min(keepalive_ms, 10_000)),
        ("grpc.http2.min_time_between_pings_ms", min(keepalive_ms, 10_000)),
    ]


def open_channel(config: Config, service: str, *, bounded_windows: bool = False) -> aio.Channel:
    """An insecure (loopback / mesh-internal) channel to one service by its configured address.

    `bounded_windows` turns off HTTP/2 window auto-tuning (BDP probing): a process that relays many
    large streams to slower HTTP clients (the gateway) then buffers at most the default window per
    stream, instead of windows grown to many MiB each.
    """
    options = [
        *channel_options(config),
        ("grpc.enable_retries", int(config.grpc.retry_attempts > 1)),
        # A restarted service should be found again within a second or two, not after gRPC's default
        # backoff of up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.service_config", service_config(config)),
    ]
    if bounded_windows:
        options.append(("grpc.http2.bdp_probe", 0))
    interceptors: list[Any] = [*aio_client_interceptors(), *request_id_interceptors()]  # type: ignore[no-untyped-call]
    return aio.insecure_channel(config.services.address(service), options=options, interceptors=interceptors)
