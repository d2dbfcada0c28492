"""An in-process stand-in for the factory's HTTP API, with knobs to misbehave during downloads.

It answers the routes of factory spec §2 with the reference's status codes and texts. Downloads honour
`Range` and `If-Range` like the gateway (ETag `"sha256:<hex>"`), unless told to:
`cut_after` closes the connection after that many body bytes (once per listed value),
`ignore_range` answers 200 to a range request, `shift_range` answers 206 starting elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCHEMATIC = b"customization:\n    extraKernelArgs:\n        - console=ttyS0\n"
SCHEMATIC_ID = hashlib.sha256(SCHEMATIC).hexdigest()
VERSIONS = ["v1.11.5", "v1.12.1"]
EXTENSIONS = [
    {
        "name": "siderolabs/gvisor",
        "ref": "ghcr.io/siderolabs/gvisor:20231214",
        "digest": "sha256:" + "1" * 64,
        "author": "Sidero Labs",
        "description": "gVisor runtime",
    }
]
OVERLAYS = [
    {
        "name": "rpi_generic",
        "image": "siderolabs/sbc-raspberrypi",
        "ref": "ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0",
        "digest": "sha256:" + "2" * 64,
    }
]
ISO = bytes(range(256)) * 1024 + b"end of iso"  # 256 KiB and a bit
KERNEL = b"HdrS" * 5000
TALOSCTL = b"\x7fELF talosctl"
PUBLIC_KEY = b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"


def text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={"X-Request-ID": "req-1"})


@dataclass
class FakeFactory:
    schematics: dict[str, bytes] = field(default_factory=lambda: {SCHEMATIC_ID: SCHEMATIC})
    assets: dict[str, bytes] = field(default_factory=lambda: {"metal-amd64.iso": ISO, "kernel-amd64": KERNEL})
    public_key: bytes = PUBLIC_KEY
    secureboot: bool = False
    cut_after: list[int] = field(default_factory=list)
    ignore_range: bool = False
    shift_range: int = 0
    etag: bool = True
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/schematics", self.create_schematic)
        app.router.add_get("/schematics/{id}", self.get_schematic, allow_head=False)
        app.router.add_get("/versions", self.versions)
        app.router.add_get("/version/{version}/extensions/official", self.catalog(EXTENSIONS))
        app.router.add_get("/version/{version}/overlays/official", self.catalog(OVERLAYS))
        app.router.add_get("/talosctl/{version}", self.talosctl_list)
        app.router.add_get("/talosctl/{version}/{file}", self.talosctl_file)
        app.router.add_get("/image/{id}/{version}/{path}", self.image)
        app.router.add_get("/pxe/{id}/{version}/{target}", self.pxe, allow_head=False)
        app.router.add_get("/oci/cosign/signing-key.pub", self.key)
        app.router.add_get("/secureboot/signing-cert.pem", self.cert)
        app.router.add_get("/readyz", self.readyz)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        return await handler(request)

    async def create_schematic(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body.startswith(b"something:"):
            return text_error(
                400, "yaml: construct errors: line 1: field something not found in type schematic.Schematic"
            )
        if len(body) > 4096:
            return text_error(413, "request body too large")
        sid = hashlib.sha256(body).hexdigest()
        self.schematics[sid] = body
        return web.json_response({"id": sid, "schematic": body.decode()}, status=201)

    async def get_schematic(self, request: web.Request) -> web.Response:
        body = self.schematics.get(request.match_info["id"])
        if body is None:
            return text_error(404, "schematic not found")
        return web.Response(body=body, content_type="application/yaml")

    async def versions(self, request: web.Request) -> web.Response:
        return web.json_response(["v1.11.5"] if request.query.get("broken") == "true" else VERSIONS)

    def _version(self, request: web.Request) -> web.Response | None:
        version = request.match_info["version"]
        if version not in VERSIONS:
            return text_error(404, f"version {version.removeprefix('v')} is not available")
        return None

    def catalog(self, items: list[dict[str, str]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return self._version(request) or web.json_response(items)

        return handler

    async def talosctl_list(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        base = f"{request.scheme}://{request.host}"
        return self._version(request) or web.json_response([f"{base}/talosctl/{version}/talosctl-linux-amd64"])

    async def talosctl_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["file"] != "talosctl-linux-amd64":
            return text_error(500, "internal server error")
        return await self._send(request, TALOSCTL)

    async def image(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path.endswith(".sha256"):
            return text_error(402, "enterprise not enabled: checksum endpoint is not available")
        if request.match_info["id"] not in self.schematics:
            return text_error(404, f'schematic ID "{request.match_info["id"]}" not found')
        if (problem := self._version(request)) is not None:
            return problem
        if path not in self.assets:
            return text_error(400, f'error parsing profile from path: invalid profile path: "{path}"')
        return await self._send(request, self.assets[path])

    async def _send(self, request: web.Request, data: bytes) -> web.StreamResponse:
        etag = f'"sha256:{hashlib.sha256(data).hexdigest()}"'
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if self.etag:
            headers["ETag"] = etag
        start, status = 0, 200
        wanted = request.headers.get("Range")
        if wanted and not self.ignore_range and request.headers.get("If-Range", etag) == etag:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            shown = start + self.shift_range
            headers["Content-Range"] = f"bytes {shown}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(data) - start
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        await response.prepare(request)
        body = data[start:]
        if self.cut_after:
            cut = self.cut_after.pop(0)
            await response.write(body[:cut])
            assert request.transport is not None
            request.transport.close()  # the client sees fewer bytes than Content-Length
            return response
        await response.write(body)
        await response.write_eof()
        return response

    async def pxe(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in self.schematics:
            return text_error(404, f'schematic ID "{request.match_info["id"]}" not found')
        return web.Response(text="#!ipxe\n\nimgfree\nkernel k console=ttyS0\ninitrd i\nboot\n")

    async def key(self, request: web.Request) -> web.Response:
        return web.Response(body=self.public_key, content_type="application/x-pem-file")

    async def cert(self, request: web.Request) -> web.Response:
        if not self.secureboot:
            return text_error(500, "internal server error")
        return web.Response(body=b"-----BEGIN CERTIFICATE-----\n", content_type="application/x-pem-file")

    async def readyz(self, request: web.Request) -> web.Response:
        return web.Response(status=200)


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Run `app` on a loopback port in a thread of its own (for blocking callers); yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port.append(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def catalog_json(items: list[dict[str, str]]) -> bytes:
    return json.dumps(items).encode()
