"""Asset downloads and PXE scripts (spec §2.6, §2.8, §10).

`/image/…` asks the builder to ensure the asset (get or build), then streams it from the cache with
Range support. `/pxe/…` ensures the `cmdline-…` asset and renders the iPXE template around it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from aiohttp import web

from gateway.cache_files import send_cached
from gateway.errors import text_error
from gateway.http_headers import RangeNotSatisfiable, content_disposition, parse_range
from gateway.keys import BACKENDS, CONFIG
from imagefactory.v1 import builder_pb2, cache_pb2, common_pb2
from services.shared.errors import FactoryError

log = logging.getLogger(__name__)

CHECKSUM_SUFFIXES = (".sha512", ".sha256")
SIGNATURE_SUFFIX = ".sigstore.json"
# Consistent-hashing header for the builder route (deploy/envoy): one replica builds one asset.
ASSET_KEY_METADATA = "x-asset-key"
PXE_ARCHES = {"x86_64": "amd64", "i386": "amd64", "amd64": "amd64", "arm64": "arm64"}

T = TypeVar("T")


def routing_key(schematic: str, version: str, path: str) -> str:
    """Same request, same key: Envoy hashes it to pick the builder replica that owns the build."""
    return hashlib.sha256(f"{schematic}\0{version.removeprefix('v')}\0{path}".encode()).hexdigest()


async def ensure_asset(request: web.Request, schematic: str, version: str, path: str) -> common_pb2.AssetRef:
    """Wait for the builder to have the asset in the cache; progress events are only logged here."""
    call = request.app[BACKENDS].builder.EnsureAsset(
        builder_pb2.EnsureAssetRequest(schematic_id=schematic, version=version, path=path),
        metadata=((ASSET_KEY_METADATA, routing_key(schematic, version, path)),),
    )
    asset = None
    # Read the stream to its end (the asset is its last message): a call left open keeps its trace
    # span open, and that span is the parent of everything the builder did.
    async for event in call:
        if event.HasField("asset"):
            asset = event.asset
        else:
            log.debug("build progress", extra={"step": event.progress.step, "detail": event.progress.message})
    if asset is None:
        raise web.HTTPServiceUnavailable(text="the builder ended without an asset")
    return asset


async def with_asset(
    request: web.Request, schematic: str, version: str, path: str, use: Callable[[common_pb2.AssetRef], Awaitable[T]]
) -> T:
    """Ensure the asset, then `use` it; if the cache refuses it before the first byte, ensure it once more.

    The builder's cache check does not hash the bytes; reading does. An asset that fails that check is
    dropped by the cache (NOT_FOUND), as is one caught mid-replacement by a concurrent Put: ensuring it
    again rebuilds it, so the client gets the asset rather than a 404 for a path that is valid.
    """
    asset = await ensure_asset(request, schematic, version, path)
    try:
        return await use(asset)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        log.warning("the cache refused an asset the builder had found; ensuring it again", extra={"key": asset.key})
    return await use(await ensure_asset(request, schematic, version, path))


async def image(request: web.Request) -> web.StreamResponse:
    schematic, version, path = (request.match_info[k] for k in ("schematic", "version", "path"))
    # Enterprise-only sidecars are refused before anything else, as the community reference does.
    if path.endswith(SIGNATURE_SUFFIX):
        return text_error(402, "enterprise signing is not enabled: signature endpoint is not available")
    if path.endswith(CHECKSUM_SUFFIXES):
        return text_error(402, "enterprise not enabled: checksum endpoint is not available")
    try:
        disposition = content_disposition(request.query.get("filename") or path)
    except FactoryError as exc:
        return text_error(400, exc.message)
    return await with_asset(request, schematic, version, path, lambda asset: send_asset(request, asset, disposition))


async def send_asset(request: web.Request, asset: common_pb2.AssetRef, disposition: str) -> web.StreamResponse:
    headers = {
        "Content-Type": asset.media_type,
        "Content-Disposition": disposition,
        "Accept-Ranges": "bytes",
        "ETag": f'"{asset.digest}"',
    }
    if_range = request.headers.get("If-Range")
    ranged = None
    if if_range is None or if_range == headers["ETag"]:
        try:
            ranged = parse_range(request.headers.get("Range"), asset.size)
        except RangeNotSatisfiable:
            # An error like any other (one line of text), in net/http's words (`ServeContent`).
            return text_error(
                416, "invalid range: failed to overlap", headers={"Content-Range": f"bytes */{asset.size}"}
            )
    if ranged is None:
        status, offset, length = 200, 0, asset.size
    else:
        status, offset, length = 206, ranged.start, ranged.length
        headers["Content-Range"] = ranged.content_range(asset.size)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return web.Response(status=status, headers=headers)
    return await send_cached(request, asset.key, lambda _: headers, status=status, offset=offset, length=length)


STANDARD_IPXE = "#!ipxe\n\nimgfree\nkernel {kernel} {cmdline}\ninitrd {initramfs}\nboot\n"
SECUREBOOT_IPXE = "#!ipxe\n\nimgfree\nkernel {uki} {cmdline}\nboot\n"


def pxe_script(base: str, schematic: str, version: str, target: str, cmdline: str) -> str:
    """The reference's iPXE templates, byte for byte (spec §10); `target` = `<platform>-<arch>[-secureboot]`."""
    tag = version if version.startswith("v") else f"v{version}"
    prefix = f"{base.rstrip('/')}/image/{schematic}/{tag}"
    secureboot = target.endswith("-secureboot")
    platform, _, arch = target.removesuffix("-secureboot").rpartition("-")
    if secureboot:
        return SECUREBOOT_IPXE.format(uki=f"{prefix}/{platform}-{arch}-secureboot-uki.efi", cmdline=cmdline)
    return STANDARD_IPXE.format(
        kernel=f"{prefix}/kernel-{arch}", initramfs=f"{prefix}/initramfs-{arch}.xz", cmdline=cmdline
    )


def normalize_pxe_target(target: str) -> str:
    """iPXE's `${buildarch}` values map to our arches (`x86_64`, `i386` → amd64)."""
    secure = target.endswith("-secureboot")
    platform, _, arch = target.removesuffix("-secureboot").rpartition("-")
    arch = PXE_ARCHES.get(arch, arch)
    return f"{platform}-{arch}" + ("-secureboot" if secure else "")


async def read_small(request: web.Request, key: str) -> bytes:
    chunks: list[bytes] = []
    async for message in request.app[BACKENDS].cache.Read(cache_pb2.ReadRequest(key=key)):
        chunks.append(message.data)
    return b"".join(chunks)


async def pxe(request: web.Request) -> web.Response:
    schematic, version = request.match_info["schematic"], request.match_info["version"]
    target = normalize_pxe_target(request.match_info["path"])
    data = await with_asset(request, schematic, version, f"cmdline-{target}", lambda a: read_small(request, a.key))
    cmdline = data.decode().strip()
    config = request.app[CONFIG]
    base = config.http.external_pxe_url or config.http.external_url
    script = pxe_script(base, schematic, version, target, cmdline)
    # Go leaves the type unset and sniffs the script as text/plain (spec §1.5).
    return web.Response(body=script.encode(), headers={"Content-Type": "text/plain; charset=utf-8"})


def register(app: web.Application) -> None:
    app.router.add_get("/image/{schematic}/{version}/{path}", image)
    app.router.add_get("/pxe/{schematic}/{version}/{path}", pxe, allow_head=False)
