"""What can go wrong talking to an Image Factory, as one exception hierarchy.

The factory answers errors with a status and a one-line `text/plain` body (factory spec §1.3, README
"Errors"). `error_for` turns that pair into the matching `APIError` subclass, so callers can catch
`NotFound` or `Unavailable` instead of comparing numbers. Failures that never reached an HTTP status
(refused connection, a body cut short) are `TransportError`s; bytes that do not add up are `IntegrityError`s.
"""

from __future__ import annotations

# Longest message kept from an error body: a proxy in between may answer with a whole HTML page.
MAX_MESSAGE = 300


class ImageFactoryError(Exception):
    """Base of everything this package raises."""


class TransportError(ImageFactoryError):
    """The request did not get a complete answer: connection refused or reset, timeout."""


class DownloadInterrupted(TransportError):
    """The body stopped early. The bytes received so far are kept in `part` for a resume."""

    def __init__(self, message: str, part: str, received: int) -> None:
        super().__init__(message)
        self.part = part
        self.received = received


class IntegrityError(ImageFactoryError):
    """Bytes that do not match what the server or a bundle manifest announced."""


class APIError(ImageFactoryError):
    """The factory answered with an error status; `message` is its one-line body."""

    status: int = 0

    def __init__(self, status: int, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.message else f"HTTP {self.status}"


class ClientError(APIError):
    """A 4xx answer: the request itself is at fault."""


class BadRequest(ClientError):
    """400: an invalid schematic, asset path or parameter."""


class EnterpriseRequired(ClientError):
    """402: the feature exists only in the enterprise edition (checksums, signatures, owners)."""


class NotFound(ClientError):
    """404: unknown schematic, version, file or route."""


class MethodNotAllowed(ClientError):
    """405."""


class PayloadTooLarge(ClientError):
    """413: the schematic body is above the factory's limit."""


class RangeNotSatisfiable(ClientError):
    """416: a resume asked for bytes past the end."""


class TooManyRequests(ClientError):
    """429."""


class ServerError(APIError):
    """A 5xx answer. The factory hides details behind `internal server error` and `X-Request-ID`."""


class NotImplementedByServer(ServerError):
    """501."""


class Unavailable(ServerError):
    """503: an upstream or a service of the mesh is down; retrying later may succeed."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    402: EnterpriseRequired,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    416: RangeNotSatisfiable,
    429: TooManyRequests,
    501: NotImplementedByServer,
    503: Unavailable,
}


def one_line(body: str) -> str:
    """The first non-empty line of an error body, bounded: what the factory means to say."""
    for line in body.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"
    return ""


def error_for(status: int, body: str, request_id: str | None = None) -> APIError:
    """The exception for an error answer: by exact status, else by class (4xx, 5xx)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ClientError)
    return cls(status, one_line(body), request_id)
