"""The web UI (factory spec §12, §2.14): the schematic wizard, its fragments, build progress, static files.

`register(app)` is the only thing the gateway calls. Static files live in `gateway/static/` (htmx is
vendored there, with its license: no CDN) and are served under `/js/` and `/css/` as the reference does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.ui import progress, views

STATIC: Final = Path(__file__).parent.parent / "static"


def register(app: web.Application) -> None:
    env = views.make_environment()
    env.globals["version_label"] = views.version_label
    app[views.JINJA] = env
    app.router.add_get("/", views.index)
    app.router.add_post("/ui/wizard", views.wizard)
    app.router.add_post("/ui/extensions-list", views.extensions_list)
    app.router.add_get("/ui/version-doc", views.version_doc, allow_head=False)
    app.router.add_get("/ui/progress", progress.build_progress, allow_head=False)
    app.router.add_static("/js/", STATIC / "js")
    app.router.add_static("/css/", STATIC / "css")
