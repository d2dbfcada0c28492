"""gRPC status → HTTP response, in one table (the Go factory's `MatchError`).

4xx bodies keep the service's one-line message (the Go texts); 5xx other than 502, 503 and 507 say only
"internal server error" — details are in the logs and the trace, found by X-Request-ID.
"""

from __future__ import annotations

from typing import Any

import grpc
from aiohttp import web

from services.shared.interceptors import REASON_METADATA

# (code, reason) → HTTP status; reason None matches any reason of that code.
STATUS_TABLE: dict[tuple[grpc.StatusCode, str | None], int] = {
    (grpc.StatusCode.INVALID_ARGUMENT, None): 400,
    (grpc.StatusCode.OUT_OF_RANGE, None): 416,
    (grpc.StatusCode.NOT_FOUND, None): 404,
    (grpc.StatusCode.FAILED_PRECONDITION, None): 400,
    (grpc.StatusCode.FAILED_PRECONDITION, "NOT_ENABLED"): 402,
    # Upstream content whose signature does not verify: our upstream failed us, not the client.
    (grpc.StatusCode.FAILED_PRECONDITION, "UNVERIFIED"): 502,
    (grpc.StatusCode.RESOURCE_EXHAUSTED, None): 429,
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE"): 413,
    # A full disk on our side: RFC 4918's "Insufficient Storage", not a 429 aimed at the client.
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_SPACE"): 507,
    (grpc.StatusCode.UNAVAILABLE, None): 503,
    (grpc.StatusCode.DEADLINE_EXCEEDED, None): 503,
    (grpc.StatusCode.CANCELLED, None): 499,
    (grpc.StatusCode.UNIMPLEMENTED, None): 501,
}

# Statuses whose message is safe and useful to show to the client.
_SHOW_MESSAGE = {400, 402, 404, 413, 416, 429, 501, 502, 503, 507}
_DEFAULT_MESSAGES = {503: "service temporarily unavailable", 499: "client closed request"}


def http_status(code: grpc.StatusCode, reason: str | None) -> int:
    return STATUS_TABLE.get((code, reason)) or STATUS_TABLE.get((code, None)) or 500


def text_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A Go `http.Error`-style response: one line + newline, text/plain, nosniff."""
    response = web.Response(status=status, text=message.rstrip("\n") + "\n", headers=headers)
    response.content_type = "text/plain"
    response.charset = "utf-8"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def reason_of(error: grpc.aio.AioRpcError) -> str | None:
    metadata: Any = error.trailing_metadata()  # an aio.Metadata mapping on aio channels
    value = metadata.get(REASON_METADATA) if metadata else None
    return str(value) if value is not None else None


def rpc_error_response(error: grpc.aio.AioRpcError) -> web.Response:
    status = http_status(error.code(), reason_of(error))
    if status in _SHOW_MESSAGE:
        details = (error.details() or "").splitlines()
        message = details[0] if details else _DEFAULT_MESSAGES.get(status, "error")
        transport = reason_of(error) is None  # our services always send a reason; gRPC itself does not
        if error.code() == grpc.StatusCode.UNAVAILABLE and (transport or "failed to connect" in message):
            # A channel-level failure (peer unreachable, or gone mid-call: "Stream removed (Socket
            # closed)"): the text would leak addresses and mean little to a client.
            message = _DEFAULT_MESSAGES[503]
    else:
        message = _DEFAULT_MESSAGES.get(status, "internal server error")
    return text_error(status, message)
