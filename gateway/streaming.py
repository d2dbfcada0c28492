"""Relay a server-streaming RPC into an HTTP response without buffering it.

The first message is awaited before the response is prepared, so an error that happens before any
byte (not found, unverified, bad range) still becomes a proper status through the error middleware.
An error after that can only abort the connection; it is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger(__name__)


class DataMessage(Protocol):
    data: bytes


async def relay(
    request: web.Request,
    call: AsyncIterable[Any],
    headers: Callable[[Any], Mapping[str, str]],
    *,
    status: int = 200,
) -> web.StreamResponse:
    """`headers(first_message)` gives the response headers; every message's `data` is the body."""
    iterator = call.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(status=status, headers=dict(headers(first)))
    if request.method == "HEAD":
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()
        await response.prepare(request)
        return response
    await response.prepare(request)
    try:
        if first is not None and first.data:
            await response.write(first.data)
        async for message in iterator:
            if message.data:
                await response.write(message.data)
    except Exception:
        # Too late for a status: the client sees a truncated body (Content-Length tells it so).
        log.exception("stream failed after the response started", extra={"path": request.path})
        raise
    await response.write_eof()
    return response
