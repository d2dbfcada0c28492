"""Request bodies in the gateway: a total deadline (slow clients) and the size limit, before any RPC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from services.shared.config import Config, HttpConfig
from tests.support.fakes import FakeBackends, FakeStub

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


def app(**http: Any) -> tuple[Any, list[bytes]]:
    received: list[bytes] = []

    async def create(request: Any) -> Any:
        received.append(request.body)
        raise AssertionError("no body may reach the schematic service in these tests")

    backends = FakeBackends(schematic=FakeStub(CreateSchematic=create))
    return create_app(Config(http=HttpConfig(**http)), backends), received


async def test_a_body_that_does_not_arrive_in_time_is_a_408(aiohttp_client: ClientFactory) -> None:
    application, received = app(body_timeout_seconds=0.3)
    client = await aiohttp_client(application)

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(50):  # never idle for long, never done in time
            yield b" "
            await asyncio.sleep(0.05)

    started = time.monotonic()
    reply = await client.post("/schematics", data=trickle())
    assert reply.status == 408
    assert await reply.text() == "request body timeout\n"
    assert reply.headers["Connection"] == "close"
    assert time.monotonic() - started < 2
    assert received == []


async def test_a_slow_body_that_arrives_in_time_is_served(aiohttp_client: ClientFactory) -> None:
    received: list[bytes] = []

    async def create(request: Any) -> Any:
        received.append(request.body)
        return SimpleNamespace(id="a" * 64, canonical_yaml="customization: {}\n")

    backends = FakeBackends(schematic=FakeStub(CreateSchematic=create))
    client = await aiohttp_client(create_app(Config(http=HttpConfig(body_timeout_seconds=1.0)), backends))

    async def slow() -> AsyncIterator[bytes]:
        for part in (b"customization:", b" {}\n"):
            await asyncio.sleep(0.2)
            yield part

    reply = await client.post("/schematics", data=slow())
    assert reply.status == 201
    assert received == [b"customization: {}\n"]


async def test_a_declared_oversized_body_is_a_413_before_it_is_read(aiohttp_client: ClientFactory) -> None:
    application, received = app(max_body_bytes=100)
    client = await aiohttp_client(application)
    reply = await client.post("/schematics", data=b"x" * 101)
    assert (reply.status, await reply.text()) == (413, "request body too large\n")
    reply = await client.post("/healthz", data=b"x" * 101)  # whatever the route
    assert reply.status == 413
    assert received == []
