"""HTTP API frontend: health, readiness, schematics (spec §2.2, §2.3, §2.12)."""

from __future__ import annotations

import grpc
from aiohttp import web

from gateway.errors import text_error
from gateway.gojson import go_json
from gateway.keys import BACKENDS
from imagefactory.v1 import schematic_pb2


async def healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def readyz(request: web.Request) -> web.Response:
    missing = await request.app[BACKENDS].not_ready()
    if missing:
        return text_error(503, f"not ready: {', '.join(missing)}")
    return web.Response(status=200)


async def create_schematic(request: web.Request) -> web.Response:
    body = await request.read()  # bounded by client_max_size: larger bodies are 413
    reply = await request.app[BACKENDS].schematic.CreateSchematic(schematic_pb2.CreateSchematicRequest(body=body))
    # 201 even when it already existed: the reference's create is idempotent (spec §2.2).
    return web.Response(
        status=201, body=go_json({"id": reply.id, "schematic": reply.canonical_yaml}), content_type="application/json"
    )


async def get_schematic(request: web.Request) -> web.Response:
    try:
        reply = await request.app[BACKENDS].schematic.GetSchematic(
            schematic_pb2.GetSchematicRequest(id=request.match_info["schematic"])
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # the handler's own text, not the storage's (spec §2.3)
            return text_error(404, "schematic not found")
        raise
    return web.Response(status=200, body=reply.canonical_yaml.encode(), content_type="application/yaml")


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/schematics", create_schematic)
    app.router.add_get("/schematics/{schematic}", get_schematic, allow_head=False)
