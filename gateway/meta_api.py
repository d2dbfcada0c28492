"""Metadata frontend: versions, official extensions and overlays, talosctl (spec §2.4, §2.5, §2.7)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.gojson import go_json
from gateway.keys import BACKENDS, CONFIG
from gateway.streaming import relay
from imagefactory.v1 import catalog_pb2

# The Go handlers leave Content-Type unset and net/http sniffs JSON as text/plain (spec §1.5).
SNIFFED_JSON = "text/plain; charset=utf-8"
# What Go's mime.TypeByExtension answers for ".exe" on Debian (from /etc/mime.types).
EXE_CONTENT_TYPE = "application/x-msdos-program"


def sniffed_json(value: Any) -> web.Response:
    return web.Response(body=go_json(value), headers={"Content-Type": SNIFFED_JSON})


async def versions(request: web.Request) -> web.Response:
    broken = request.query.get("broken") == "true"
    reply = await request.app[BACKENDS].catalog.ListVersions(catalog_pb2.ListVersionsRequest(include_broken=broken))
    return sniffed_json(list(reply.versions))


async def official_extensions(request: web.Request) -> web.Response:
    reply = await request.app[BACKENDS].catalog.ListExtensions(
        catalog_pb2.ListExtensionsRequest(version=request.match_info["version"])
    )
    return sniffed_json(
        [
            {"name": e.name, "ref": e.ref, "digest": e.digest, "author": e.author, "description": e.description}
            for e in reply.extensions
        ]
    )


async def official_overlays(request: web.Request) -> web.Response:
    reply = await request.app[BACKENDS].catalog.ListOverlays(
        catalog_pb2.ListOverlaysRequest(version=request.match_info["version"])
    )
    return sniffed_json([{"name": o.name, "image": o.image, "ref": o.ref, "digest": o.digest} for o in reply.overlays])


async def talosctl_list(request: web.Request) -> web.Response:
    version = request.match_info["version"]
    reply = await request.app[BACKENDS].catalog.ListTalosctl(catalog_pb2.ListTalosctlRequest(version=version))
    base = request.app[CONFIG].http.external_url.rstrip("/")
    tag = version if version.startswith("v") else f"v{version}"
    urls = sorted(f"{base}/talosctl/{tag}/{f.name}" for f in reply.files)
    return web.Response(body=go_json(urls), content_type="application/json")


async def talosctl_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["path"]
    call = request.app[BACKENDS].catalog.ReadTalosctl(
        catalog_pb2.ReadTalosctlRequest(version=request.match_info["version"], name=name)
    )

    def headers(first: Any) -> dict[str, str]:
        out = {"Content-Disposition": f'attachment; filename="{name}"'}
        if first is not None:
            out["Content-Length"] = str(first.file.size)
        out["Content-Type"] = EXE_CONTENT_TYPE if name.endswith(".exe") else "application/octet-stream"
        return out

    return await relay(request, call, headers)


def register(app: web.Application) -> None:
    app.router.add_get("/versions", versions, allow_head=False)
    app.router.add_get("/version/{version}/extensions/official", official_extensions, allow_head=False)
    app.router.add_get("/version/{version}/overlays/official", official_overlays, allow_head=False)
    app.router.add_get("/talosctl/{version}", talosctl_list, allow_head=False)
    app.router.add_get("/talosctl/{version}/{path}", talosctl_file)
