"""Domain errors that know their gRPC status.

Errors start where the problem is found (a parser, a store, a tool) as one of these exceptions.
One server interceptor (`services.shared.grpc_server`) turns them into a gRPC status whose details
is the one-line human message; the gateway maps that status to HTTP in one table
(`gateway.errors`). Servicers never call `context.abort` themselves.
"""

from __future__ import annotations

import errno

import grpc


class FactoryError(Exception):
    """Base of every error that crosses a process boundary.

    `message` must be one line: it becomes the gRPC status details and, for 4xx, the HTTP body.
    `reason` is a stable machine-readable tag (sent as trailing metadata `if-reason`).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        # Keep messages to a single line: they travel as status details and HTTP bodies.
        self.message = " ".join(message.splitlines()) if "\n" in message else message
        if reason is not None:
            self.reason = reason
        super().__init__(self.message)


class InvalidArgument(FactoryError):
    """The caller sent something malformed (bad schematic, bad path, bad version)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID"


class NotFound(FactoryError):
    """The named thing does not exist (schematic, version, asset)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class OutOfRange(FactoryError):
    """A byte range outside the resource (HTTP 416)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class NotEnabled(FactoryError):
    """A feature is not available in this edition or configuration."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "NOT_ENABLED"


class PayloadTooLarge(FactoryError):
    """A request body or stream exceeded a configured limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_LARGE"


class InsufficientStorage(FactoryError):
    """Our own disk is full (ENOSPC, EDQUOT): the request was fine, retry once space is freed."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "NO_SPACE"


# How the kernel says that a volume is full.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class Overloaded(FactoryError):
    """Too much work queued; try again later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "OVERLOADED"


class UpstreamUnavailable(FactoryError):
    """A dependency (registry, another service, a store) cannot be reached right now."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class VerificationFailed(FactoryError):
    """A signature or digest did not verify; the content must not be used."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "UNVERIFIED"


class Unimplemented(FactoryError):
    """The RPC exists in the API but this build of the service does not do it yet."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


class Internal(FactoryError):
    """A bug or a failed tool; details go to logs and spans, the caller sees a short message."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"
