"""The SDK against an in-process fake factory (aiohttp's test server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from imagefactory_client import AsyncClient
from tests.unit.client.fake_factory import FakeFactory

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
async def client(aiohttp_server: Any, factory: FakeFactory) -> AsyncIterator[AsyncClient]:
    server: TestServer = await aiohttp_server(factory.app())
    async with AsyncClient(str(server.make_url(""))) as client:
        yield client
