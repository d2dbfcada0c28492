"""Per-request context that follows a request across processes (request ID)."""

from __future__ import annotations

import contextvars
import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_METADATA = "x-request-id"  # gRPC metadata keys are lower-case

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# An incoming request ID is echoed only when it is short and printable; anything else could
# inject log lines or headers, so a fresh one is generated instead.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def sane_request_id(value: str | None) -> str:
    """Return `value` if it is a safe request ID, otherwise a new UUIDv4."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return str(uuid.uuid4())
