"""Registry authentication: anonymous, HTTP basic, and the distribution bearer-token flow.

The token flow (distribution "token authentication specification", which ghcr.io, Docker Hub and
Harbor implement): a request answered `401` with `WWW-Authenticate: Bearer realm=R,service=S,
scope=X` is retried once with a token from `GET R?service=S&scope=X`; the token request carries the
basic credentials if we have any, otherwise it asks for an anonymous token. Tokens are cached per
scope until shortly before they expire, so steady-state requests cost no extra round trip.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

from services.shared.errors import UpstreamUnavailable


class AccessDenied(UpstreamUnavailable):
    """The registry refused us (401/403) even after answering its challenge.

    It stays an UNAVAILABLE error: the caller of the factory is not the one being denied, the
    factory is, so a dependency is unusable. It is its own class because some callers treat it
    differently: the asset cache and installer lookups treat a 403 like a miss (spec §8.2, §9.2).
    """

    reason = "REGISTRY_DENIED"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# Token lifetime when the server does not say (the token spec's default).
_DEFAULT_EXPIRES_IN: Final = 60
# Refresh a little early so a token does not expire between our check and the registry's.
_MAX_SKEW: Final = 10.0
# A token request is small; a token server that stalls should fail the call, not hang it.
_TOKEN_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)

_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME_RE: Final = re.compile(rf"\s*({_TOKEN})(?=\s|$)")
# Unquoted values should be tokens; accept anything up to a comma, as some servers send bare URLs.
_PARAM_RE: Final = re.compile(r"\s*(" + _TOKEN + r')\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)')
_SEPARATOR_RE: Final = re.compile(r"[\s,]*")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercased: "bearer", "basic"
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse one `WWW-Authenticate` value; quoted values may hold commas (`scope="repo:x:pull,push"`)."""
    challenges: list[Challenge] = []
    pos = _SEPARATOR_RE.match(header).end()  # type: ignore[union-attr]  # `[\s,]*` always matches
    while pos < len(header):
        scheme = _SCHEME_RE.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while (param := _PARAM_RE.match(header, pos)) is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
        pos = _SEPARATOR_RE.match(header, pos).end()  # type: ignore[union-attr]
    return challenges


class TokenCache:
    """Bearer tokens by scope, dropped shortly before they expire."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(self, scope: str) -> str | None:
        entry = self._tokens.get(scope)
        if entry is None:
            return None
        token, deadline = entry
        if self._clock() >= deadline:
            del self._tokens[scope]
            return None
        return token

    def put(self, scope: str, token: str, expires_in: float) -> None:
        skew = min(_MAX_SKEW, expires_in / 10)
        self._tokens[scope] = (token, self._clock() + expires_in - skew)

    def discard(self, scope: str) -> None:
        self._tokens.pop(scope, None)


class Authenticator:
    """Chooses the `Authorization` header for a request and answers challenges.

    `scope` is the access a request needs (`repository:<repo>:pull`, `…:pull,push`, or "" for
    `/v2/`); it keys the token cache. The scope sent to the token server is the one the registry
    named in its challenge, because only the registry knows what it will check.
    """

    def __init__(
        self,
        registry: str,
        basic_auth: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._basic_auth = basic_auth  # a ready `Authorization: Basic …` value, or None
        self._tokens = TokenCache(clock)
        self._basic = False  # set once the registry asked for basic auth
        self._locks: dict[str, asyncio.Lock] = {}

    def header(self, scope: str) -> str | None:
        if self._basic and self._basic_auth is not None:
            return self._basic_auth
        token = self._tokens.get(scope)
        return f"Bearer {token}" if token is not None else None

    async def answer(self, session: aiohttp.ClientSession, challenges: list[Challenge], scope: str) -> bool:
        """Prepare credentials for a retry; False when we have nothing the registry would accept."""
        by_scheme = {c.scheme: c for c in challenges}
        if (bearer := by_scheme.get("bearer")) is not None and "realm" in bearer.params:
            await self._fetch_token(session, bearer, scope)
            return True
        if "basic" in by_scheme and self._basic_auth is not None and not self._basic:
            self._basic = True
            return True
        return False

    async def _fetch_token(self, session: aiohttp.ClientSession, challenge: Challenge, scope: str) -> None:
        # One token request per scope at a time: concurrent pulls of one repo share the answer.
        lock = self._locks.setdefault(scope, asyncio.Lock())
        stale = self._tokens.get(scope)
        async with lock:
            fresh = self._tokens.get(scope)
            if fresh is not None and fresh != stale:
                return  # another task fetched a new one while we waited
            self._tokens.discard(scope)  # the registry just rejected it (or we never had one)
            token, expires_in = await self._request_token(session, challenge)
            self._tokens.put(scope, token, expires_in)

    async def _request_token(self, session: aiohttp.ClientSession, challenge: Challenge) -> tuple[str, float]:
        realm = challenge.params["realm"]
        params: list[tuple[str, str]] = []
        if service := challenge.params.get("service"):
            params.append(("service", service))
        # Several scopes arrive space-separated (cross-repository mounts); each is its own parameter.
        params.extend(("scope", s) for s in challenge.params.get("scope", "").split())
        try:
            headers = {"Authorization": self._basic_auth} if self._basic_auth is not None else {}
            async with session.get(realm, params=params, headers=headers, timeout=_TOKEN_TIMEOUT) as resp:
                if resp.status in (401, 403):
                    raise AccessDenied(
                        f"token server {realm} for registry {self._registry} refused credentials: HTTP {resp.status}",
                        status=resp.status,
                    )
                if resp.status != 200:
                    raise UpstreamUnavailable(f"token server {realm} for registry {self._registry}: HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise UpstreamUnavailable(
                f"token server {realm} for registry {self._registry} failed: {exc or type(exc).__name__}"
            ) from exc
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable(f"token server {realm} for registry {self._registry} sent no token")
        expires_in = body.get("expires_in")
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = _DEFAULT_EXPIRES_IN
        return token, float(expires_in)
