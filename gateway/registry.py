"""OCI registry frontend: `/v2` ping and the source-image proxy (spec §2.12, §2.13, §9.7).

Generated installer images (`/v2/<image>/<schematic>/…`) arrive with the installer issue; until then those
routes validate their input and answer 501.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.errors import text_error
from gateway.keys import CONFIG
from gateway.registry_routes import Ping, ProxyRoute, SchematicRoute, parse_v2_path, requested_image
from services.shared.config import ArtifactsConfig
from services.shared.errors import FactoryError

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
    try:
        requested_image(route.image)
    except FactoryError as exc:
        return text_error(400, exc.message)
    return text_error(501, "installer images are not implemented yet")


async def proxy_source_image(request: web.Request, route: ProxyRoute) -> web.StreamResponse:
    artifacts = request.app[CONFIG].artifacts
    if not artifacts.insecure:  # checked first, as the reference does (spec §9.7)
        return text_error(503, "proxying to an authorized/secure backing registry is not possible")
    component = component_for(route.image, artifacts)
    if component is None:
        return text_error(404, f"unknown image: {route.image}")
    target = f"http://{artifacts.registry}/v2/{artifacts.repository(component)}/{route.resource}/{route.reference}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_FROM_CLIENT}
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
