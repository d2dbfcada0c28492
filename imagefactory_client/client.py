"""The asynchronous HTTP client: one method per route of the factory's API (factory spec §2).

It mirrors what the reference's Go `pkg/client` offers (schematic create/get, versions, extension and
overlay catalogs, talosctl) and adds what the Go client leaves to plain HTTP: resumable asset downloads,
PXE scripts and the public keys. Every error answer becomes an `APIError` subclass carrying the
factory's one-line message (see `errors.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from imagefactory_client import transfer
from imagefactory_client.errors import IntegrityError, TransportError, Unavailable, error_for
from imagefactory_client.models import AssetInfo, Downloaded, ExtensionInfo, OverlayInfo
from imagefactory_client.transfer import Options

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "IMAGEFACTORY_URL"
USER_AGENT = "imagefactory-client/0.1"
# Cold builds may take minutes before the first byte: only connecting is bounded by default.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)

SchematicInput = Mapping[str, Any] | str | bytes


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def version_tag(version: str) -> str:
    """`1.12.1` and `v1.12.1` name the same release; URLs use the `v` form, as the factory's links do."""
    return version if version.startswith("v") else f"v{version}"


def schematic_body(schematic: SchematicInput) -> bytes:
    """The POST body: YAML text as given, or a mapping as JSON (a YAML subset the factory accepts)."""
    if isinstance(schematic, bytes):
        return schematic
    if isinstance(schematic, str):
        return schematic.encode()
    return json.dumps(schematic).encode()


class AsyncClient:
    """`async with AsyncClient(url) as client: ...`; pass `session` to share an aiohttp session."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running loop (aiohttp binds a session to its loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    def url(self, *segments: str, query: Mapping[str, str] | None = None) -> str:
        """Absolute URL of a route; each segment is percent-encoded, so none can add a `/`."""
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self.base_url}/{path}" + (f"?{urlencode(query)}" if query else "")

    async def _request(self, method: str, url: str, *, data: bytes | None = None) -> tuple[bytes, str]:
        """(body, content type) of a successful answer; an error answer raises its `APIError`."""
        try:
            async with self.session().request(method, url, data=data) as response:
                body = await response.read()
                if response.status >= 400:
                    text = body.decode(errors="replace")
                    raise error_for(response.status, text, response.headers.get("X-Request-ID"))
                return body, response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {url}: {exc or type(exc).__name__}") from None

    async def _json(self, *segments: str, query: Mapping[str, str] | None = None) -> Any:
        body, _ = await self._request("GET", self.url(*segments, query=query))
        try:
            return json.loads(body)
        except ValueError:
            raise IntegrityError(f"/{'/'.join(segments)}: the answer is not JSON") from None

    async def fetch(self, *segments: str) -> bytes:
        """The raw body of any GET route, e.g. `fetch("version", "v1.12.1", "extensions", "official")`."""
        body, _ = await self._request("GET", self.url(*segments))
        return body

    # Schematics (spec §2.2, §2.3)

    async def create_schematic(self, schematic: SchematicInput) -> str:
        """Store a schematic (idempotent) and return its 64-hex ID."""
        body, _ = await self._request("POST", self.url("schematics"), data=schematic_body(schematic))
        try:
            return str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            raise IntegrityError("POST /schematics: the answer has no schematic ID") from None

    async def get_schematic(self, schematic_id: str) -> str:
        """The canonical YAML of a stored schematic (its SHA-256 is the ID)."""
        body, _ = await self._request("GET", self.url("schematics", schematic_id))
        return body.decode()

    # Versions and catalogs (spec §2.4, §2.5)

    async def versions(self, *, broken: bool = False) -> list[str]:
        """Offered Talos versions, ascending; `broken=True`: the ones the factory refuses to build."""
        return [str(v) for v in await self._json("versions", query={"broken": "true"} if broken else None)]

    async def extensions(self, version: str) -> list[ExtensionInfo]:
        raw = await self._json("version", version_tag(version), "extensions", "official")
        return [ExtensionInfo.from_json(item) for item in raw]

    async def overlays(self, version: str) -> list[OverlayInfo]:
        raw = await self._json("version", version_tag(version), "overlays", "official")
        return [OverlayInfo.from_json(item) for item in raw]

    # talosctl (spec §2.7)

    async def talosctl(self, version: str) -> list[str]:
        """Absolute download URLs of the talosctl binaries of a version (empty before v1.11)."""
        return [str(u) for u in await self._json("talosctl", version_tag(version))]

    async def download_talosctl(
        self, version: str, file_name: str, dest: Path, options: Options | None = None
    ) -> Downloaded:
        url = self.url("talosctl", version_tag(version), file_name)
        return await transfer.download(self.session(), url, dest, options)

    # Assets (spec §2.6) and PXE (spec §2.8)

    def asset_url(self, schematic_id: str, version: str, path: str, *, filename: str | None = None) -> str:
        query = {"filename": filename} if filename else None
        return self.url("image", schematic_id, version_tag(version), path, query=query)

    async def asset_info(self, schematic_id: str, version: str, path: str) -> AssetInfo:
        """Size, type and validator of an asset by `HEAD` (builds it first if it is not cached)."""
        url = self.asset_url(schematic_id, version, path)
        try:
            async with self.session().head(url) as response:
                if response.status >= 400:
                    raise error_for(response.status, "", response.headers.get("X-Request-ID"))
                disposition = response.content_disposition
                return AssetInfo(
                    size=response.content_length,
                    media_type=response.headers.get("Content-Type", ""),
                    etag=response.headers.get("ETag"),
                    file_name=disposition.filename if disposition else None,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"HEAD {url}: {exc or type(exc).__name__}") from None

    async def download(
        self, schematic_id: str, version: str, path: str, dest: Path, options: Options | None = None
    ) -> Downloaded:
        """Download an asset to `dest`, resuming `<dest>.part` if an earlier attempt left one."""
        return await transfer.download(self.session(), self.asset_url(schematic_id, version, path), dest, options)

    async def pxe_script(self, schematic_id: str, version: str, target: str) -> str:
        """The iPXE script for `<platform>-<arch>[-secureboot]` (arch may be iPXE's `x86_64`)."""
        body, _ = await self._request("GET", self.url("pxe", schematic_id, version_tag(version), target))
        return body.decode()

    # Public keys (spec §2.9, §2.10) and health (§2.12)

    async def cosign_public_key(self) -> bytes:
        """PEM of the key that signs cached assets and installer images."""
        body, _ = await self._request("GET", self.url("oci", "cosign", "signing-key.pub"))
        return body

    async def secureboot_certificate(self) -> bytes:
        """PEM of the Secure Boot signing certificate (500 when Secure Boot is disabled)."""
        body, _ = await self._request("GET", self.url("secureboot", "signing-cert.pem"))
        return body

    async def ready(self) -> bool:
        """True when `/readyz` answers 200; a refused connection is not ready either."""
        try:
            await self._request("GET", self.url("readyz"))
        except (TransportError, Unavailable):
            return False
        return True
