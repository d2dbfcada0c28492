"""HTTP API frontend: health, readiness, schematics."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import text_error
from gateway.keys import BACKENDS
from imagefactory.v1 import schematic_pb2


async def healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def readyz(request: web.Request) -> web.Response:
    missing = await request.app[BACKENDS].not_ready()
    if missing:
        return text_error(503, f"not ready: {', '.join(missing)}")
    return web.Response(status=200)


async def get_schematic(request: web.Request) -> web.Response:
    reply = await request.app[BACKENDS].schematic.GetSchematic(
        schematic_pb2.GetSchematicRequest(id=request.match_info["schematic"])
    )
    return web.Response(status=200, body=reply.canonical_yaml.encode(), content_type="application/yaml")


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/schematics/{schematic}", get_schematic, allow_head=False)
