"""Live build progress for a download link, as server-sent events (beyond the reference, issue 9).

`GET /ui/progress?schematic-id=&version=&path=` calls the builder's `EnsureAsset` and relays its
progress stream: `event: progress` per step, then `event: ready` once the asset is in the cache (the
page then follows the plain download link, which is served from the cache), or `event: failed` with
a one-line message. Errors before the first event keep their HTTP status (bad input 400, unknown
schematic 404, …); the page falls back to the plain link then.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any, Final

import grpc
from aiohttp import web

from gateway.errors import http_status, reason_of, text_error
from gateway.images import ASSET_KEY_METADATA, routing_key
from gateway.keys import BACKENDS
from gateway.ui.strings import Translator
from imagefactory.v1 import builder_pb2
from services.catalog.versions import InvalidVersion, parse_requested

SCHEMATIC_ID: Final = re.compile(r"[0-9a-f]{64}")
# Asset file names of spec §3: letters, digits, dots, dashes and underscores only.
ASSET_PATH: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
KEEPALIVE_SECONDS: Final = 15.0


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def progress_event(progress: Any) -> dict[str, Any]:
    return {
        "step": progress.step,
        "message": progress.message,
        "fraction": progress.fraction if progress.fraction >= 0 else None,
        "elapsed": round(progress.elapsed_seconds, 1),
    }


def failure_message(error: grpc.aio.AioRpcError) -> str:
    """What the page may show: the one-line message of a 4xx/503, nothing internal otherwise."""
    status = http_status(error.code(), reason_of(error))
    if status >= 500 and status != 503:
        return "internal server error"
    return ((error.details() or "").splitlines() or ["error"])[0]


async def events(iterator: AsyncIterator[Any], first: Any) -> AsyncIterator[bytes]:
    """SSE frames for the stream; a comment every KEEPALIVE_SECONDS while a build step is silent."""
    message: Any = first
    while message is not None:
        if message.HasField("asset"):
            yield sse("ready", {"size": message.asset.size, "file": message.asset.file_name})
            return
        yield sse("progress", progress_event(message.progress))
        pending = asyncio.ensure_future(anext(iterator))
        try:
            while not (await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS))[0]:
                yield b": keepalive\n\n"
        finally:
            if not pending.done():
                pending.cancel()
        try:
            message = pending.result()
        except StopAsyncIteration:
            message = None
    yield sse("failed", {"message": "the builder ended without an asset"})


async def build_progress(request: web.Request) -> web.StreamResponse:
    t = Translator()
    query = request.query
    schematic_id, version_text, path = (query.get(k, "") for k in ("schematic-id", "version", "path"))
    if not SCHEMATIC_ID.fullmatch(schematic_id):
        return text_error(400, t("error.schematic_id"))
    try:
        version = parse_requested(version_text)
    except InvalidVersion:
        return text_error(400, t("error.version", value=version_text))
    if not ASSET_PATH.fullmatch(path):
        return text_error(400, t("error.asset_path"))
    call = request.app[BACKENDS].builder.EnsureAsset(
        builder_pb2.EnsureAssetRequest(schematic_id=schematic_id, version=version.tag, path=path),
        metadata=((ASSET_KEY_METADATA, routing_key(schematic_id, version.tag, path)),),
    )
    iterator = aiter(call)
    try:
        # Awaited before the response starts: early errors become their HTTP status (middleware).
        first = await anext(iterator)
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        async for frame in events(iterator, first):
            await response.write(frame)
    except grpc.aio.AioRpcError as exc:
        await response.write(sse("failed", {"message": failure_message(exc)}))
    finally:
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            with suppress(Exception):
                cancel()
    await response.write_eof()
    return response
