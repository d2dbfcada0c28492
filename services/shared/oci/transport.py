"""HTTP plumbing shared by the client, blob reads and uploads: auth retries and error mapping.

Error mapping (`raise_for_status`, `unreachable`), decided once for every registry call:
404 → `NotFound`; 401/403 after answering the registry's challenge → `AccessDenied` (a subclass of
`UpstreamUnavailable`, see `auth.py`); connection errors, timeouts, 429 and 5xx →
`UpstreamUnavailable`, one line naming the registry; 416 → `InvalidArgument`; any other status
means we sent something the registry rejects (a bug on our side) → `Internal`. Digest mismatches
(`VerificationFailed`) are found by the callers, which know what digest they asked for.
"""

from __future__ import annotations

import io
import json
from typing import Final, NoReturn
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from services.shared.errors import Internal, InvalidArgument, NotFound, PayloadTooLarge, UpstreamUnavailable

from .auth import AccessDenied, Authenticator, parse_challenges
from .reference import DOCKER_HUB

# Long blob streams must not hit a total deadline; a stalled socket still fails.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
_USER_AGENT: Final = "image-factory-py"
# aiohttp's threshold for its "large body as raw bytes" warning (payload.TOO_LARGE_BYTES_BODY).
_LARGE_BODY: Final = 1 << 20


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


class Transport:
    def __init__(
        self,
        registry: str,
        *,
        insecure: bool,
        basic_auth: str | None,
        session: aiohttp.ClientSession | None,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self.registry = registry
        # Docker Hub's API is not served at the name people write in references.
        host = "registry-1.docker.io" if registry == DOCKER_HUB else registry
        self.base = URL(f"{'http' if insecure else 'https'}://{host}")
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._auth = Authenticator(registry, basic_auth)

    def url(self, path: str) -> URL:
        return self.base.with_path(path)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be made inside the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": _USER_AGENT})
        return self._session

    async def send(
        self,
        method: str,
        url: URL,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request, answering at most one auth challenge; the caller checks the status.

        `scope` is the access the request needs (`pull_scope(repo)`, `push_scope(repo)`, "" for
        `/v2/`). Bodies are always bytes, so a request can be replayed after a challenge.
        """
        session = self._http()
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            # Credentials go only to the registry itself, not to an upload URL on another host.
            if url.origin() == self.base.origin() and (auth := self._auth.header(scope)) is not None:
                request_headers["Authorization"] = auth
            # aiohttp writes a large `bytes` body in one go and warns that it may block the loop;
            # a fresh BytesIO per attempt is sent in pieces and can still be replayed.
            body: bytes | io.BytesIO | None = io.BytesIO(data) if data is not None and len(data) > _LARGE_BODY else data
            try:
                resp = await session.request(method, url, headers=request_headers, data=body, timeout=self._timeout)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self.unreachable(exc) from exc
            if resp.status != 401 or attempt == 2:
                return resp
            challenges = [c for h in resp.headers.getall("WWW-Authenticate", []) for c in parse_challenges(h)]
            if not await self._auth.answer(session, challenges, scope):
                return resp
            resp.release()
        raise AssertionError("unreachable")

    def unreachable(self, exc: BaseException) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"registry {self.registry} unreachable: {exc or type(exc).__name__}")

    async def raise_for_status(self, resp: aiohttp.ClientResponse, what: str) -> NoReturn:
        detail = await _error_detail(resp)
        status = resp.status
        if status == 404:
            raise NotFound(f"{what} not found in registry {self.registry}{detail}")
        if status in (401, 403):
            message = f"registry {self.registry} denied access to {what}: HTTP {status}{detail}"
            raise AccessDenied(message, status=status)
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(f"registry {self.registry} failed {what}: HTTP {status}{detail}")
        if status == 416:
            raise InvalidArgument(f"range not satisfiable for {what} in registry {self.registry}")
        raise Internal(f"registry {self.registry} rejected {what}: HTTP {status}{detail}")

    async def read_limited(self, resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
        """The whole body, refusing more than `limit` bytes before buffering them."""
        if resp.content_length is not None and resp.content_length > limit:
            raise PayloadTooLarge(f"{what} is {resp.content_length} bytes; limit {limit}")
        try:
            data = await resp.content.read(limit + 1)
            # `read(n)` may return early; keep reading until EOF or past the limit.
            while len(data) <= limit and (more := await resp.content.read(limit + 1 - len(data))):
                data += more
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self.unreachable(exc) from exc
        if len(data) > limit:
            raise PayloadTooLarge(f"{what} exceeds {limit} bytes")
        return data

    def location(self, resp: aiohttp.ClientResponse, what: str) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise Internal(f"registry {self.registry} answered {what} without a Location")
        # Locations may be relative; keep the registry's encoding of the upload state untouched.
        return URL(urljoin(str(self.base) + "/", location), encoded=True)


async def _error_detail(resp: aiohttp.ClientResponse) -> str:
    """`: CODE message` from a distribution error body, or "" if there is none."""
    try:
        body = json.loads(await resp.content.read(4096))
        first = body["errors"][0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (TimeoutError, aiohttp.ClientError, ValueError, LookupError, TypeError, AttributeError):
        return ""
