"""A bare aiohttp app answering fixed routes with fixed bytes: the baseline of the small-endpoint benchmark.

`python -m tests.bench.bare_app PORT ANSWERS.json`, where the JSON is a list of
`{"method", "path", "status", "content_type", "body_b64"}` copied from the gateway's own answers. POST
handlers read the request body before answering, as the gateway must.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


def fixed(answer: dict[str, Any]) -> Handler:
    body = base64.b64decode(answer["body_b64"])
    headers = {"Content-Type": answer["content_type"]}

    async def handle(request: web.Request) -> web.Response:
        if request.can_read_body:
            await request.read()
        return web.Response(status=answer["status"], body=body, headers=headers)

    return handle


def make_app(answers: list[dict[str, Any]]) -> web.Application:
    app = web.Application()
    for answer in answers:
        app.router.add_route(answer["method"], answer["path"], fixed(answer))
    return app


def main() -> None:
    port, answers = int(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    web.run_app(make_app(answers), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
