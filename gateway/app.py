"""The gateway application factory: middlewares, frontends, and the gRPC clients' lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import cache_files, http_api, images, meta_api, public_keys, registry, ui
from gateway.backends import Backends
from gateway.keys import BACKENDS, CONFIG
from gateway.middleware import add_headers_on_prepare, request_context
from services.shared.config import Config


def create_app(config: Config, backends: Backends | None = None) -> web.Application:
    """Build the app; `backends` may be injected (tests), otherwise channels open on startup.

    Tracing comes from `AioHttpServerInstrumentor`, installed by the process entry point before this
    runs: it substitutes an Application subclass whose outermost middleware opens the server span.
    """
    app = web.Application(
        middlewares=[request_context],
        client_max_size=config.http.max_body_bytes,
    )
    app[CONFIG] = config

    async def grpc_clients(app: web.Application) -> AsyncIterator[None]:
        owned = backends is None
        app[BACKENDS] = backends if backends is not None else Backends.connect(config)
        yield
        if owned:
            await app[BACKENDS].close()

    app.cleanup_ctx.append(grpc_clients)
    app.on_response_prepare.append(_stamp)
    cache_files.register(app)
    http_api.register(app)
    public_keys.register(app)
    meta_api.register(app)
    registry.register(app)
    images.register(app)
    ui.register(app)
    return app


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    add_headers_on_prepare(request, response)
