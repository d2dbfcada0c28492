"""In-memory stand-ins for gRPC stubs, for gateway tests that do not need real services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from gateway.backends import Backends
from services.shared.interceptors import REASON_METADATA


def rpc_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> aio.AioRpcError:
    """The error a real aio stub raises for a failed call."""
    trailing = aio.Metadata((REASON_METADATA, reason)) if reason else aio.Metadata()
    return aio.AioRpcError(code, aio.Metadata(), trailing, details, None)


class FakeStub:
    """Any RPC name → the handler registered for it (a coroutine function taking the request)."""

    def __init__(self, **handlers: Callable[[Any], Awaitable[Any]]) -> None:
        self._handlers = handlers

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        handler = self._handlers.get(name)
        if handler is None:
            raise AttributeError(name)

        async def call(request: Any, **_: Any) -> Any:
            return await handler(request)

        return call


class FakeBackends(Backends):
    """Backends whose stubs are FakeStubs and whose readiness is set by the test."""

    def __init__(self, unready: list[str] | None = None, **stubs: FakeStub) -> None:
        super().__init__(channels={})
        self.unready = unready or []
        self.stubs = stubs

    async def not_ready(self) -> list[str]:
        return list(self.unready)

    async def close(self) -> None:
        return None

    @property
    def schematic(self) -> Any:
        return self.stubs["schematic"]

    @property
    def catalog(self) -> Any:
        return self.stubs["catalog"]

    @property
    def builder(self) -> Any:
        return self.stubs["builder"]

    @property
    def cache(self) -> Any:
        return self.stubs["cache"]

    @property
    def signer(self) -> Any:
        return self.stubs["signer"]
