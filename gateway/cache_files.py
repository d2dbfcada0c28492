"""Send cached assets to HTTP clients: sendfile(2) from the cache's verified file, else a gRPC stream.

The cache verifies an asset (signature, size, SHA-256) and reports its file and that file's identity
(`CacheService.Locate`). When this process can open the file and fstat(2) shows the same identity, the
kernel copies the bytes to the socket: no byte crosses Python, which is what lets a cached download keep
up with a registry serving the same blob. A file replaced or written since the check differs in inode or
ctime and is never used. In every other case (the cache on another machine, a store without local files,
`http.send_cache_files: false`) the bytes stream over gRPC (`CacheService.Read`), verified the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from aiohttp import web

from gateway.keys import BACKENDS, CONFIG
from gateway.streaming import relay
from imagefactory.v1 import cache_pb2, common_pb2

log = logging.getLogger(__name__)

HeadersFor = Callable[[common_pb2.AssetRef], Mapping[str, str]]


@dataclass
class SendfileState:
    """Per-app memory of whether local sending can work at all, so a remote cache costs one probe."""

    unsupported: bool = False
    unreachable_logged: bool = False


SENDFILE_STATE = web.AppKey("sendfile_state", SendfileState)


def register(app: web.Application) -> None:
    app[SENDFILE_STATE] = SendfileState()


async def send_cached(
    request: web.Request,
    key: str,
    headers_for: HeadersFor,
    *,
    status: int = 200,
    offset: int = 0,
    length: int = 0,
) -> web.StreamResponse:
    """Answer with asset `key` (`length` bytes from `offset`, 0 = to the end) and `headers_for(asset)`.

    The headers must carry the Content-Length of what is sent. Errors before the first byte (not found,
    unverified, bad range) propagate as the cache reported them.
    """
    if request.app[CONFIG].http.send_cache_files and not request.app[SENDFILE_STATE].unsupported:
        opened = await _open_verified(request, key)
        if opened is not None:
            asset, handle = opened
            try:
                count = length or asset.size - offset
                return await _sendfile(request, handle, headers_for(asset), status, offset, count)
            finally:
                handle.close()
    call = request.app[BACKENDS].cache.Read(cache_pb2.ReadRequest(key=key, offset=offset, length=length))

    def from_first(first: Any) -> Mapping[str, str]:
        if first is None or not first.HasField("asset"):
            raise web.HTTPServiceUnavailable(text="the cache answered without the asset's metadata")
        return headers_for(first.asset)

    return await relay(request, call, from_first, status=status)


async def _open_verified(request: web.Request, key: str) -> tuple[common_pb2.AssetRef, IO[bytes]] | None:
    state: SendfileState = request.app[SENDFILE_STATE]
    try:
        located = await request.app[BACKENDS].cache.Locate(cache_pb2.LocateRequest(key=key))
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        state.unsupported = True
        log.info("the cache cannot locate files; assets stream over gRPC")
        return None
    try:
        handle = await asyncio.to_thread(open_if_same, located.path, located.identity)
    except OSError as exc:
        if not state.unreachable_logged:
            state.unreachable_logged = True
            log.info(
                "cache files are not reachable from the gateway; assets stream over gRPC "
                "(http.send_cache_files: false skips this check)",
                extra={"error": str(exc)},
            )
        return None
    if handle is None:
        return None
    return located.asset, handle


def open_if_same(path: str, identity: Any) -> IO[bytes] | None:
    """Open `path` if it is still exactly the file the cache verified; None if it changed since."""
    handle = Path(path).open("rb")  # noqa: SIM115 - the caller owns and closes it
    st = os.fstat(handle.fileno())
    now = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    then = (identity.device, identity.inode, identity.size, identity.mtime_ns, identity.ctime_ns)
    if now != then:
        handle.close()
        log.warning("a cache file changed after it was verified; streaming it over gRPC instead", extra={"path": path})
        return None
    return handle


async def _sendfile(
    request: web.Request, handle: IO[bytes], headers: Mapping[str, str], status: int, offset: int, count: int
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=dict(headers))
    await response.prepare(request)  # sends the status line and headers right away
    if request.method != "HEAD" and count > 0:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        # os.sendfile on plain TCP; asyncio falls back to read/write where the transport cannot.
        await asyncio.get_running_loop().sendfile(transport, handle, offset, count)
    await response.write_eof()
    return response
