"""gRPC status → HTTP mapping, and the gateway's common HTTP behaviour (no real services)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.errors import http_status, rpc_error_response
from services.shared.config import Config
from tests.support.fakes import FakeBackends, FakeStub, rpc_error

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.mark.parametrize(
    ("code", "reason", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, None, 400),
        (grpc.StatusCode.NOT_FOUND, None, 404),
        (grpc.StatusCode.FAILED_PRECONDITION, None, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, "NOT_ENABLED", 402),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, 429),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE", 413),
        (grpc.StatusCode.UNAVAILABLE, None, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, 503),
        (grpc.StatusCode.INTERNAL, None, 500),
        (grpc.StatusCode.UNKNOWN, None, 500),
        (grpc.StatusCode.DATA_LOSS, None, 500),
        (grpc.StatusCode.PERMISSION_DENIED, None, 500),
    ],
)
def test_status_table(code: grpc.StatusCode, reason: str | None, status: int) -> None:
    assert http_status(code, reason) == status


def test_client_errors_keep_the_message_server_errors_do_not() -> None:
    bad = rpc_error_response(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, 'invalid profile path: "x.ssd"'))
    assert (bad.status, bad.text) == (400, 'invalid profile path: "x.ssd"\n')
    assert bad.content_type == "text/plain"
    assert bad.charset == "utf-8"
    assert bad.headers["X-Content-Type-Options"] == "nosniff"
    crash = rpc_error_response(rpc_error(grpc.StatusCode.INTERNAL, "mkfs.xfs exit 1: /tmp/secret/path"))
    assert (crash.status, crash.text) == (500, "internal server error\n")
    down = rpc_error_response(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; ipv4:..."))
    assert (down.status, down.text) == (503, "service temporarily unavailable\n")
    busy = rpc_error_response(
        rpc_error(grpc.StatusCode.UNAVAILABLE, "registry 127.0.0.1:5000 is unreachable", reason="UNAVAILABLE")
    )
    assert (busy.status, busy.text) == (503, "registry 127.0.0.1:5000 is unreachable\n")
    # No reason: gRPC's own failure of this hop (the peer died mid-call), not a service's message.
    gone = rpc_error_response(rpc_error(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)"))
    assert (gone.status, gone.text) == (503, "service temporarily unavailable\n")
    full = rpc_error_response(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "building x.iso failed: no space left", reason="NO_SPACE")
    )
    assert (full.status, full.text) == (507, "building x.iso failed: no space left\n")


def make_app(backends: FakeBackends) -> Any:
    return create_app(Config(), backends)


async def test_request_id_is_echoed_when_sane_and_generated_otherwise(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_app(FakeBackends()))
    reply = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert reply.status == 200
    assert reply.headers["X-Request-ID"] == "abc-123"
    assert reply.headers["Server"].startswith("Image Factory ")
    assert "Enterprise" not in reply.headers["Server"]
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    value = generated.headers["X-Request-ID"]
    assert value != "bad id\twith spaces"
    assert len(value) == 36  # a UUIDv4
    assert (await client.get("/healthz")).headers["X-Request-ID"] != value


async def test_unknown_path_and_wrong_method(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_app(FakeBackends()))
    missing = await client.get("/no/such/route")
    assert (missing.status, await missing.text()) == (404, "404 page not found\n")
    wrong = await client.post("/healthz")
    assert wrong.status == 405
    assert "GET" in wrong.headers["Allow"]
    assert await wrong.text() == "Method Not Allowed\n"
    head = await client.head("/healthz")
    assert head.status == 200


async def test_readyz_reports_unready_services(aiohttp_client: ClientFactory) -> None:
    backends = FakeBackends(unready=["builder", "cache"])
    client = await aiohttp_client(make_app(backends))
    reply = await client.get("/readyz")
    assert (reply.status, await reply.text()) == (503, "not ready: builder, cache\n")
    backends.unready = []
    assert (await client.get("/readyz")).status == 200


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        # GET /schematics answers a miss with its own text, like the reference's handler (spec §2.3)
        (rpc_error(grpc.StatusCode.NOT_FOUND, 'schematic ID "x" not found'), 404, "schematic not found\n"),
        (rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad\nsecond line"), 400, "bad\n"),
        (rpc_error(grpc.StatusCode.INTERNAL, "stack trace here"), 500, "internal server error\n"),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), 503, "Deadline Exceeded\n"),
    ],
)
async def test_rpc_errors_become_http_statuses(
    aiohttp_client: ClientFactory, error: grpc.aio.AioRpcError, status: int, body: str
) -> None:
    async def fail(request: Any) -> Any:
        raise error

    client = await aiohttp_client(make_app(FakeBackends(schematic=FakeStub(GetSchematic=fail))))
    reply = await client.get("/schematics/" + "a" * 64)
    assert reply.status == status
    assert await reply.text() == body
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-Request-ID" in reply.headers


async def test_a_bug_in_a_handler_is_a_bare_500(aiohttp_client: ClientFactory) -> None:
    async def crash(request: Any) -> Any:
        raise RuntimeError("secret detail")

    client = await aiohttp_client(make_app(FakeBackends(schematic=FakeStub(GetSchematic=crash))))
    reply = await client.get("/schematics/x")
    assert (reply.status, await reply.text()) == (500, "internal server error\n")


async def test_response_sizes_are_observed_per_route(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_app(FakeBackends()))

    def observed(method: str, code: str) -> tuple[float, float]:
        labels = {"handler": "unmatched", "method": method, "code": code}
        count = REGISTRY.get_sample_value("http_response_size_bytes_count", labels) or 0.0
        total = REGISTRY.get_sample_value("http_response_size_bytes_sum", labels) or 0.0
        return count, total

    before = observed("GET", "404")
    reply = await client.get("/no/such/route")
    body = await reply.read()
    after = observed("GET", "404")
    assert (after[0] - before[0], after[1] - before[1]) == (1, len(body))
    head_before = observed("HEAD", "404")
    await client.head("/no/such/route")
    head_after = observed("HEAD", "404")
    assert (head_after[0] - head_before[0], head_after[1] - head_before[1]) == (1, 0)  # HEAD carries no body
