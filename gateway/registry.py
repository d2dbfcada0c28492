"""OCI registry frontend: `/v2` ping, generated installer images, the source-image proxy (spec §2.12, §2.13, §9).

Installer images are built on the first pull of a version tag (`docker pull` waits meanwhile); the
builder publishes them by digest and tags them only after their signature verified. By default they
live in the signed asset store and the gateway serves them; with `installer.internal` set they are
pushed to that registry and clients are redirected (`installer.external`) or proxied to it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.cache_files import send_cached
from gateway.errors import text_error
from gateway.http_headers import ByteRange, RangeNotSatisfiable, parse_range
from gateway.images import ASSET_KEY_METADATA, routing_key
from gateway.keys import BACKENDS, CONFIG
from gateway.registry_routes import Ping, ProxyRoute, SchematicRoute, parse_v2_path, requested_image
from imagefactory.v1 import builder_pb2, cache_pb2, common_pb2, schematic_pb2
from services.shared.config import ArtifactsConfig
from services.shared.errors import FactoryError
from services.shared.oci import digest_of, index_bytes
from services.shared.oci.media_types import OCI_INDEX
from services.shared.oci.reference import registry_scheme

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PROXY_SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)
# Hop-by-hop headers are the connection's, not the resource's (RFC 9110 §7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
DROP_FROM_CLIENT = HOP_BY_HOP | {"authorization", "host", "cookie"}


def component_for(image: str, artifacts: ArtifactsConfig) -> str | None:
    components = artifacts.components
    return {
        "installer-base": components.installer_base,
        "installer": components.installer,
        "imager": components.imager,
        "extensions": components.extensions,
        "overlays": components.overlays,
        "talosctl-all": components.talosctl,
    }.get(image)


async def v2(request: web.Request) -> web.StreamResponse:
    try:
        route = parse_v2_path(request.match_info.get("path", ""))
    except FactoryError as exc:
        return text_error(404, exc.message)
    if isinstance(route, Ping):
        return web.Response(status=200)
    if isinstance(route, ProxyRoute):
        return await proxy_source_image(request, route)
    assert isinstance(route, SchematicRoute)
    return await installer_content(request, route)


async def installer_content(request: web.Request, route: SchematicRoute) -> web.StreamResponse:
    """Generated installer images (spec §9.2, §9.6): built on demand, then served from the signed store
    (embedded) or from the registry they were pushed to (redirect or proxy, spec §9.5)."""
    backends = request.app[BACKENDS]
    await backends.schematic.GetSchematic(schematic_pb2.GetSchematicRequest(id=route.schematic))  # 404 first
    try:
        requested_image(route.image)
    except FactoryError as exc:
        return text_error(400, exc.message)
    if route.resource == "referrers":
        if not DIGEST.match(route.reference):
            return text_error(404, f"invalid referrers subject digest: {route.reference}")
        body = index_bytes([])
        return web.Response(body=body, headers=content_headers(OCI_INDEX, digest_of(body), len(body)))
    installer = request.app[CONFIG].installer
    reference = route.reference
    if installer.embedded:
        if route.resource == "manifests" and not DIGEST.match(reference):
            # A tag (`v1.12.1`, `latest`) or a signature tag: the builder builds/publishes or resolves it.
            reference = await ensure_installer(request, route)
        if not DIGEST.match(reference):
            return text_error(404, f"unknown digest: {reference}")
        return await serve_content(request, reference)
    # Spec §9.2 step 4: only version tags (and `latest`) are built; anything else goes straight through.
    if route.resource == "manifests" and (reference == "latest" or reference.startswith("v")):
        reference = await ensure_installer(request, route)
    return await forward_to_registry(request, route, reference)


async def ensure_installer(request: web.Request, route: SchematicRoute) -> str:
    """The digest of the published, signature-verified index of a tag (built on first request)."""
    call = request.app[BACKENDS].builder.EnsureInstaller(
        builder_pb2.EnsureInstallerRequest(
            schematic_id=route.schematic, version=route.reference, image_name=route.image
        ),
        # One builder replica owns one installer build (Envoy ring-hash, deploy/envoy).
        metadata=((ASSET_KEY_METADATA, routing_key(route.schematic, route.reference, route.image)),),
    )
    digest = ""
    async for event in call:  # to the end, so that the call's trace span ends too
        if event.HasField("installer"):
            digest = event.installer.index.digest
    if not digest:
        raise web.HTTPServiceUnavailable(text="the builder ended without an installer")
    return digest


async def forward_to_registry(request: web.Request, route: SchematicRoute, reference: str) -> web.StreamResponse:
    """307 to the external name of the registry, or a proxied request to the internal one (spec §9.5)."""
    installer = request.app[CONFIG].installer
    path = f"{route.image}/{route.schematic}/{route.resource}/{reference}"
    if installer.external:
        host, _, prefix = installer.external.partition("/")
        scheme = registry_scheme(host)  # parsed without the insecure flag, as the reference does
    else:
        host, prefix = installer.internal.registry, installer.internal.repository
        scheme = registry_scheme(host, insecure=installer.internal.insecure)
    target = f"{scheme}://{host}/v2/{prefix.strip('/') + '/' if prefix.strip('/') else ''}{path}"
    if installer.external:
        return web.Response(status=307, headers={"Location": target})
    return await proxy(request, target)


async def serve_content(request: web.Request, digest: str) -> web.StreamResponse:
    """Bytes stored under their digest, whole or a `Range` of them (clients resume layer downloads);
    anything whose recorded digest differs is not ours to serve."""
    key = digest.removeprefix("sha256:")
    ranged: ByteRange | None = None
    if request.headers.get("Range") is not None and request.method == "GET":
        stat = await request.app[BACKENDS].cache.Stat(cache_pb2.StatRequest(key=key))
        if stat.asset.digest != digest:
            return text_error(404, f"blob unknown: {digest}")
        try:
            ranged = parse_range(request.headers["Range"], stat.asset.size)
        except RangeNotSatisfiable:
            unsatisfiable = {"Content-Range": f"bytes */{stat.asset.size}"}
            return text_error(416, "invalid range: failed to overlap", headers=unsatisfiable)

    def headers(asset: common_pb2.AssetRef) -> dict[str, str]:
        if asset.digest != digest:
            raise web.HTTPNotFound(text=f"blob unknown: {digest}")
        if ranged is None:
            return content_headers(asset.media_type, digest, asset.size) | {"Accept-Ranges": "bytes"}
        sent = content_headers(asset.media_type, digest, ranged.length)
        return sent | {"Accept-Ranges": "bytes", "Content-Range": ranged.content_range(asset.size)}

    if ranged is None:
        return await send_cached(request, key, headers)
    return await send_cached(request, key, headers, status=206, offset=ranged.start, length=ranged.length)


def content_headers(media_type: str, digest: str, size: int) -> dict[str, str]:
    return {"Content-Type": media_type, "Docker-Content-Digest": digest, "Content-Length": str(size)}


async def proxy_source_image(request: web.Request, route: ProxyRoute) -> web.StreamResponse:
    artifacts = request.app[CONFIG].artifacts
    if not artifacts.insecure:  # checked first, as the reference does (spec §9.7)
        return text_error(503, "proxying to an authorized/secure backing registry is not possible")
    component = component_for(route.image, artifacts)
    if component is None:
        return text_error(404, f"unknown image: {route.image}")
    target = f"http://{artifacts.registry}/v2/{artifacts.repository(component)}/{route.resource}/{route.reference}"
    return await proxy(request, target)


async def proxy(request: web.Request, target: str) -> web.StreamResponse:
    """Forward the request without the client's credentials; return the backend's answer unchanged."""
    # A multidict: clients send several `Accept` headers (one per manifest type) and each must pass.
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in DROP_FROM_CLIENT)
    session = request.app[PROXY_SESSION]
    try:
        upstream = await session.request(
            request.method, target, params=request.query, headers=headers, allow_redirects=False
        )
    except aiohttp.ClientError:
        return text_error(502, "Bad Gateway")
    async with upstream:
        response = web.StreamResponse(status=upstream.status)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.content.iter_chunked(1024 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response


async def proxy_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        app[PROXY_SESSION] = session
        yield


def register(app: web.Application) -> None:
    app.cleanup_ctx.append(proxy_session)
    app.router.add_get("/v2", v2)
    app.router.add_get("/v2/{path:.*}", v2)
