"""Cross-cutting HTTP behaviour: request IDs, the Server header, error mapping, logs and metrics.

Handlers parse, call one RPC and render; when an RPC fails they just let the error propagate and the
error middleware answers with the mapped status (gateway.errors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from gateway.errors import rpc_error_response, text_error
from gateway.keys import CONFIG
from services.shared.context import REQUEST_ID_HEADER, request_id_var, sane_request_id
from services.shared.version import PRODUCT_NAME, VERSION

log = logging.getLogger("gateway.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER_HEADER = f"{PRODUCT_NAME} {VERSION}"

REQUEST_DURATION = Histogram("http_request_duration_seconds", "HTTP request latency", ["handler", "method", "code"])
REQUESTS_INFLIGHT = Gauge("http_requests_inflight", "HTTP requests being served", ["handler"])
RESPONSES = Counter("http_responses_total", "HTTP responses by status", ["handler", "method", "code"])
# The reference's buckets (go-http-metrics): 100 B, 1 kB, … 10 GB.
RESPONSE_SIZE = Histogram(
    "http_response_size_bytes",
    "HTTP response body sizes",
    ["handler", "method", "code"],
    buckets=tuple(100 * 10**n for n in range(8)),
)


def route_label(request: web.Request) -> str:
    """The matched route pattern (bounded cardinality), not the raw path."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def _http_exception_response(exc: web.HTTPException) -> web.StreamResponse:
    """Router errors in the Go router's words; other HTTP exceptions keep their own body."""
    if isinstance(exc, web.HTTPNotFound) and exc.text == "404: Not Found":
        return text_error(404, "404 page not found")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return text_error(405, "Method Not Allowed", headers={"Allow": exc.headers.get("Allow", "")})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return text_error(413, "request body too large")
    if exc.status >= 400:
        return text_error(exc.status, exc.text or exc.reason, headers=dict(exc.headers))
    return exc


class BodyTimeout(asyncio.TimeoutError):
    """The client did not send its whole body within `http.body_timeout_seconds` (a slow-loris)."""


def _body_deadline(request: web.Request, seconds: float) -> asyncio.TimerHandle | None:
    """Fail the body stream, wherever the handler reads it, if it is still incomplete after `seconds`.

    aiohttp has no body timeout: a client that sends headers and then trickles (or stalls) its body
    holds a handler forever. The deadline is total, not idle, so a trickle cannot extend it. It being a
    TimeoutError also ends aiohttp's lingering read of an unread body, so the connection closes.
    """
    if not request.body_exists or request.content.is_eof():
        return None

    def expire() -> None:
        if not request.content.is_eof():
            request.content.set_exception(BodyTimeout())

    return asyncio.get_running_loop().call_later(seconds, expire)


def _log_level(status: int) -> int:
    if status < 400:
        return logging.INFO
    return logging.WARNING if status < 500 or status == 503 else logging.ERROR


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ID in and out, Server header, one log line and metrics per request, errors mapped."""
    request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = request_id_var.set(request_id)
    label = route_label(request)
    started = time.monotonic()
    status = 500
    error: str | None = None
    REQUESTS_INFLIGHT.labels(label).inc()
    limits = request.app[CONFIG].http
    deadline = _body_deadline(request, limits.body_timeout_seconds)
    try:
        try:
            if (request.content_length or 0) > limits.max_body_bytes:
                raise web.HTTPRequestEntityTooLarge(limits.max_body_bytes, request.content_length or 0)
            response = await handler(request)
        except BodyTimeout:
            error = "request body timeout"
            response = text_error(408, "request body timeout")
            response.force_close()
        except web.HTTPException as exc:
            response = _http_exception_response(exc)
        except grpc.aio.AioRpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
            response = rpc_error_response(exc)
        except asyncio.CancelledError:
            status, error = 499, "client closed request"
            raise
        except Exception as exc:  # a bug: log once with the traceback, answer a bare 500
            log.exception("unhandled error", extra={"path": request.path})
            error = repr(exc)
            response = text_error(500, "internal server error")
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
            response.headers["Server"] = SERVER_HEADER
        status = response.status
        RESPONSE_SIZE.labels(label, request.method, str(status)).observe(_body_size(request, response))
        return response
    finally:
        if deadline is not None:
            deadline.cancel()
        duration = time.monotonic() - started
        REQUESTS_INFLIGHT.labels(label).dec()
        REQUEST_DURATION.labels(label, request.method, str(status)).observe(duration)
        RESPONSES.labels(label, request.method, str(status)).inc()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 or status == 503 else logging.ERROR
        log.log(
            level,
            "request",
            extra={
                "frontend": "http",
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration": round(duration, 6),
                "error": error,
            },
        )
        request_id_var.reset(token)


def add_headers_on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Streamed responses are prepared inside handlers; stamp them too (on_response_prepare)."""
    response.headers.setdefault(REQUEST_ID_HEADER, request_id_var.get() or sane_request_id(None))
    response.headers.setdefault("Server", SERVER_HEADER)


def _body_size(request: web.Request, response: web.StreamResponse) -> int:
    """Bytes of body the response carries: its Content-Length (also for bodies sent with sendfile(2),
    which bypass the writer's count), else what was written; none for HEAD."""
    if request.method == "HEAD":
        return 0
    return response.content_length if response.content_length is not None else response.body_length
