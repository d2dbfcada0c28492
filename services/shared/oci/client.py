"""The one async OCI distribution client every service uses (spec §6.5, §7.2, §8.2, §9).

Why not oras: the mission guide says "use `oras` where it fits". oras-py 0.2.43 is synchronous and
built on `requests`: in our asyncio services every call would need a worker thread, blob reads would
land in files or whole in memory instead of flowing as 1 MiB chunks into a gRPC stream, and there is
no hook to verify a digest while streaming and refuse the tail of a tampered blob. The factory needs
only a dozen distribution endpoints, so this module speaks them directly with aiohttp, keeps memory
bounded by the chunk size, and maps failures to `services.shared.errors` in one place
(`transport.py` documents the mapping). oras (the Python library or the Go CLI) still fits outside
the services: tests and operator scripts that push fixtures or cross-check what we pushed, where
blocking calls and temporary files do no harm.

Module map: `reference` (names, digests), `media_types`, `manifest` (typed manifests/descriptors),
`auth` (basic and bearer tokens), `transport` (requests, retries after challenges, error mapping),
`blobs` (streamed reads with verification, chunked uploads), and this public facade.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from types import TracebackType
from typing import Final, Self

import aiohttp
from yarl import URL

from services.shared.errors import InvalidArgument, NotFound, PayloadTooLarge, UpstreamUnavailable, VerificationFailed

from . import media_types
from .blobs import BlobReader, finish_upload, start_upload, upload_stream
from .manifest import Descriptor, Manifest, Platform, media_type_of, specific_media_type
from .reference import digest_of, is_digest, referrers_tag, validate_digest, validate_repository, validate_tag
from .transport import DEFAULT_TIMEOUT, Transport, pull_scope, push_scope

# Registries must accept manifests up to 4 MiB (OCI distribution spec); refuse to buffer more.
MAX_MANIFEST_SIZE: Final = 4 << 20
# `get_blob` is for configs, schematics and signature payloads, never for assets.
MAX_SMALL_BLOB: Final = 16 << 20
# Stop following `Link` headers after this many pages, in case a registry loops.
_MAX_TAG_PAGES: Final = 10_000


class RegistryClient:
    """Client for one registry host; repositories are passed per call.

    `insecure=True` means plain HTTP (loopback test registries, spec §6.5 `insecure`). Pass a shared
    `session` to pool connections across clients (it must not set `raise_for_status`: statuses are
    mapped here); otherwise the client owns one and closes it in `close()` / `async with`.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.registry = registry
        basic = aiohttp.encode_basic_auth(username, password or "") if username is not None else None
        self._transport = Transport(registry, insecure=insecure, basic_auth=basic, session=session, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    # --- registry and tags -------------------------------------------------------------------

    async def ping(self) -> None:
        """Check `/v2/` answers (authenticating if the registry wants it)."""
        async with await self._transport.send("GET", self._transport.url("/v2/"), scope="") as resp:
            if resp.status != 200:
                await self._transport.raise_for_status(resp, "API version check")

    async def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of `repo`, following `Link: <…>; rel="next"` pages."""
        first = self._url(repo, "tags/list")
        url: URL | None = first if page_size is None else first.with_query(n=page_size)
        tags: list[str] = []
        seen: set[URL] = set()
        while url is not None and url not in seen and len(seen) < _MAX_TAG_PAGES:
            seen.add(url)
            async with await self._transport.send("GET", url, scope=pull_scope(repo)) as resp:
                if resp.status != 200:
                    await self._transport.raise_for_status(resp, f"tags of {repo}")
                body = await self._read_json(resp, f"tags of {repo}")
                page = body.get("tags")
                if isinstance(page, list):  # `null` for a repository without tags
                    tags.extend(t for t in page if isinstance(t, str))
                url = _next_link(resp)
        return tags

    # --- manifests ---------------------------------------------------------------------------

    async def get_manifest(self, repo: str, ref: str, accept: tuple[str, ...] = media_types.ANY_MANIFEST) -> Manifest:
        """Fetch a manifest or index; by digest, the bytes must hash to that digest."""
        what = f"manifest {repo}:{ref}"
        headers = {"Accept": ", ".join(accept)}
        async with await self._transport.send(
            "GET", self._manifest_url(repo, ref), scope=pull_scope(repo), headers=headers
        ) as resp:
            if resp.status != 200:
                await self._transport.raise_for_status(resp, what)
            data = await self._transport.read_limited(resp, MAX_MANIFEST_SIZE, what)
            manifest = Manifest.from_bytes(data, media_type_of(resp.headers.get("Content-Type"), data))
            self._check_digest(manifest.digest, ref, resp.headers.get("Docker-Content-Digest"), what)
        return manifest

    async def head_manifest(
        self, repo: str, ref: str, accept: tuple[str, ...] = media_types.ANY_MANIFEST
    ) -> Descriptor | None:
        """Digest, size and type of a manifest without its body; None if it does not exist.

        Spec §7.2 step 1 and §8.2 resolve tags this way before doing everything by digest.
        """
        what = f"manifest {repo}:{ref}"
        headers = {"Accept": ", ".join(accept)}
        async with await self._transport.send(
            "HEAD", self._manifest_url(repo, ref), scope=pull_scope(repo), headers=headers
        ) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                await self._transport.raise_for_status(resp, what)
            digest = resp.headers.get("Docker-Content-Digest")
            media_type = specific_media_type(resp.headers.get("Content-Type"))
            size = resp.content_length
        if digest is None or not is_digest(digest) or media_type is None or size is None:
            # These headers are optional for registries; the body tells us everything.
            return (await self.get_manifest(repo, ref, accept)).descriptor()
        self._check_digest(digest, ref, None, what)
        return Descriptor(media_type, digest, size)

    async def resolve_platform(self, repo: str, ref: str, os: str, arch: str, variant: str | None = None) -> Manifest:
        """The image manifest for one platform (spec §7.2 step 3).

        An index is resolved to its first matching child; a plain image manifest is returned as it
        is, like go-containerregistry's `remote.Image` with a platform option does.
        """
        manifest = await self.get_manifest(repo, ref)
        if not manifest.is_index:
            return manifest
        child = manifest.select(Platform(os, arch, variant))
        return await self.get_manifest(repo, child.digest, (child.media_type,))

    async def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """Push a manifest under a tag or its own digest; returns its digest."""
        what = f"manifest {repo}:{ref}"
        digest = digest_of(data)
        if len(data) > MAX_MANIFEST_SIZE:
            raise PayloadTooLarge(f"{what} is {len(data)} bytes; registries accept {MAX_MANIFEST_SIZE}")
        if is_digest(ref) and ref != digest:
            raise InvalidArgument(f"{what}: content digest is {digest}")
        headers = {"Content-Type": media_type}
        url = self._manifest_url(repo, ref)
        async with await self._transport.send("PUT", url, scope=push_scope(repo), headers=headers, data=data) as resp:
            if resp.status not in (200, 201):
                await self._transport.raise_for_status(resp, what)
            self._check_digest(digest, digest, resp.headers.get("Docker-Content-Digest"), what)
        return digest

    async def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (and so every tag on it); registries reject tag deletes."""
        url = self._manifest_url(repo, validate_digest(digest))
        async with await self._transport.send("DELETE", url, scope=f"repository:{repo}:delete") as resp:
            if resp.status not in (200, 202):
                await self._transport.raise_for_status(resp, f"manifest {repo}@{digest}")

    async def delete_blob(self, repo: str, digest: str) -> None:
        """Delete a blob from a repository (registries with deletes enabled); a missing blob is fine."""
        url = self._url(repo, f"blobs/{validate_digest(digest)}")
        async with await self._transport.send("DELETE", url, scope=f"repository:{repo}:delete") as resp:
            if resp.status not in (200, 202, 404):
                await self._transport.raise_for_status(resp, f"blob {repo}@{digest}")

    async def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose `subject` is `digest` (spec §7.2 bundles, §9.6).

        Uses the OCI 1.1 referrers API; a registry without it answers 404, and then the referrers
        tag `sha256-<hex>` (an index maintained by whoever pushed the referrers) is read instead.
        No referrers is an empty list, not an error.
        """
        what = f"referrers of {repo}@{digest}"
        url = self._url(repo, f"referrers/{validate_digest(digest)}")
        if artifact_type is not None:
            url = url.with_query(artifactType=artifact_type)
        headers = {"Accept": media_types.OCI_INDEX}
        index: Manifest | None = None
        filtered = False
        async with await self._transport.send("GET", url, scope=pull_scope(repo), headers=headers) as resp:
            if resp.status == 200:
                data = await self._transport.read_limited(resp, MAX_MANIFEST_SIZE, what)
                index = Manifest.from_bytes(data, media_types.OCI_INDEX)
                filtered = "artifactType" in resp.headers.get("OCI-Filters-Applied", "")
            elif resp.status != 404:
                await self._transport.raise_for_status(resp, what)
        if index is None:
            try:
                index = await self.get_manifest(repo, referrers_tag(digest), (media_types.OCI_INDEX,))
            except NotFound:
                return []
        found = index.manifests()
        if artifact_type is not None and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    # --- blobs -------------------------------------------------------------------------------

    async def head_blob(self, repo: str, digest: str) -> int | None:
        """The blob's size, or None if the repository does not have it."""
        url = self._url(repo, f"blobs/{validate_digest(digest)}")
        async with await self._transport.send("HEAD", url, scope=pull_scope(repo)) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                await self._transport.raise_for_status(resp, f"blob {repo}@{digest}")
            return resp.content_length

    async def get_blob(self, repo: str, digest: str, *, max_size: int = MAX_SMALL_BLOB) -> bytes:
        """A small blob (config, schematic, signature payload), verified, whole in memory."""
        data = bytearray()
        async with self.open_blob(repo, digest) as blob:
            if blob.size is not None and blob.size > max_size:
                raise PayloadTooLarge(f"blob {repo}@{digest} is {blob.size} bytes; limit {max_size}")
            async for chunk in blob:
                data += chunk
                if len(data) > max_size:
                    raise PayloadTooLarge(f"blob {repo}@{digest} exceeds {max_size} bytes")
        return bytes(data)

    def open_blob(self, repo: str, digest: str, offset: int = 0, length: int | None = None) -> BlobReader:
        """Stream a blob (or a byte range of it) in chunks of at most 1 MiB.

        Use as `async with client.open_blob(...) as blob: async for chunk in blob`: the request is
        sent on entry, so a missing blob raises `NotFound` before any byte is consumed, and leaving
        the block early closes the connection. (A bare `async for` works too, but then an early
        `break` leaves the response open until garbage collection.) A whole-blob read is verified
        against `digest`; see `BlobReader` for when a mismatch is raised.
        """
        validate_digest(digest)
        if offset < 0 or (length is not None and length < 1):
            raise InvalidArgument(f"invalid range offset={offset} length={length}")
        validate_repository(repo)
        return BlobReader(self._transport, repo, digest, offset, length)

    async def push_blob(
        self,
        repo: str,
        data: bytes | AsyncIterable[bytes],
        digest: str | None = None,
        *,
        mount_from: str | None = None,
    ) -> str:
        """Upload a blob unless the repository has it; returns its digest.

        Bytes go up monolithically (POST, then PUT with the body); an async iterable goes up in
        PATCH chunks of about 1 MiB, hashed on the way, so it is never held whole. With a known
        `digest` and `mount_from`, the registry is first asked to mount it from that repository.
        A `digest` that does not match the content raises `VerificationFailed` and nothing is stored.
        """
        validate_repository(repo)
        if isinstance(data, bytes):
            actual = digest_of(data)
            if digest is not None and digest != actual:
                raise VerificationFailed(f"blob for {repo} is {actual}, not the declared {digest}")
            if await self.head_blob(repo, actual) is not None:
                return actual
            location = await start_upload(self._transport, repo, actual, mount_from)
            if location is not None:
                await finish_upload(self._transport, repo, location, actual, data)
            return actual
        if digest is not None and await self.head_blob(repo, digest) is not None:
            return digest
        location = await start_upload(self._transport, repo, digest, mount_from)
        if location is None:
            assert digest is not None  # only a mount finishes here, and mounting needs the digest
            return digest
        return await upload_stream(self._transport, repo, location, data, digest)

    # --- helpers -----------------------------------------------------------------------------

    def _url(self, repo: str, rest: str) -> URL:
        return self._transport.url(f"/v2/{validate_repository(repo)}/{rest}")

    def _manifest_url(self, repo: str, ref: str) -> URL:
        if ":" in ref:
            validate_digest(ref)
        else:
            validate_tag(ref)
        return self._url(repo, f"manifests/{ref}")

    async def _read_json(self, resp: aiohttp.ClientResponse, what: str) -> dict[str, object]:
        data = await self._transport.read_limited(resp, MAX_MANIFEST_SIZE, what)
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise UpstreamUnavailable(f"registry {self.registry} sent invalid JSON for {what}")
        return body

    def _check_digest(self, actual: str, ref: str, header: str | None, what: str) -> None:
        if is_digest(ref) and actual != ref:
            raise VerificationFailed(f"{what} from registry {self.registry} has digest {actual}")
        # Only a sha256 header can be compared; other algorithms are legal but not ours.
        if header is not None and header.startswith("sha256:") and header != actual:
            raise VerificationFailed(f"{what} from registry {self.registry} has digest {actual}, header says {header}")


def _next_link(resp: aiohttp.ClientResponse) -> URL | None:
    link = resp.links.get("next")
    if link is None:
        return None
    url = link.get("url")
    return url if isinstance(url, URL) else None
