"""Blob streams in both directions, with bounded memory and digest verification."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterable
from types import TracebackType
from typing import Final, Self
from urllib.parse import quote

import aiohttp
from yarl import URL

from services.shared.errors import FactoryError, UpstreamUnavailable, VerificationFailed

from .transport import Transport, pull_scope, push_scope

# Chunk size for reads and chunked uploads: the gRPC stream unit of STYLE §11.
CHUNK_SIZE: Final = 1 << 20

_CONTENT_RANGE_RE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class BlobReader:
    """Chunks (at most `CHUNK_SIZE` bytes each) of one blob or one byte range of it.

    Verification: a whole-blob read is hashed as it streams. The reader holds back the newest
    chunk and releases it only after the next read; at the end it compares the digest and either
    yields the held-back final chunk or raises `VerificationFailed` instead. So whoever relays the
    chunks (gateway → HTTP client, cache → gRPC stream) can never pass on a complete tampered
    blob: the copy ends short and the error surfaces. The price is one chunk of latency and about two
    chunks of memory per reader. A byte range cannot be checked (the digest covers the whole
    blob); range reads serve HTTP `Range` requests for content whose manifest was verified.

    If the registry ignores `Range` and sends the whole blob (200), the unwanted bytes are skipped
    here, so callers always get exactly the range they asked for (shorter only at the blob's end).
    """

    def __init__(self, transport: Transport, repo: str, digest: str, offset: int, length: int | None) -> None:
        self.repo = repo
        self.digest = digest
        self.offset = offset
        self.length = length
        # Total size of the blob, known once the response headers arrive.
        self.size: int | None = None
        self._transport = transport
        self._resp: aiohttp.ClientResponse | None = None
        self._chunks: AsyncGenerator[bytes, None] | None = None
        self._skip = 0
        self._remaining: int | None = None

    @property
    def _ranged(self) -> bool:
        return self.offset > 0 or self.length is not None

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            await self._open()
        assert self._chunks is not None
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()
        self._release()

    async def _open(self) -> None:
        if self._chunks is not None:
            return
        what = f"blob {self.repo}@{self.digest}"
        headers: dict[str, str] = {}
        if self._ranged:
            end = "" if self.length is None else str(self.offset + self.length - 1)
            headers["Range"] = f"bytes={self.offset}-{end}"
        url = self._transport.url(f"/v2/{self.repo}/blobs/{self.digest}")
        resp = await self._transport.send("GET", url, scope=pull_scope(self.repo), headers=headers)
        try:
            if resp.status == 206:
                self._start_partial(resp.headers.get("Content-Range", ""), what)
            elif resp.status == 200:
                self.size = resp.content_length
                self._skip, self._remaining = self.offset, self.length
            else:
                await self._transport.raise_for_status(resp, what)
        except BaseException:
            resp.release()
            raise
        self._resp = resp
        self._chunks = self._iterate()

    def _start_partial(self, content_range: str, what: str) -> None:
        match = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
        if match is None or int(match.group(1)) != self.offset:
            raise UpstreamUnavailable(
                f"registry {self._transport.registry} sent range {content_range!r} for {what} from offset {self.offset}"
            )
        self.size = None if match.group(3) == "*" else int(match.group(3))
        self._skip, self._remaining = 0, self.length

    async def _iterate(self) -> AsyncGenerator[bytes, None]:
        hasher = None if self._ranged else hashlib.sha256()
        held = b""
        while chunk := await self._read_chunk():
            if hasher is None:
                yield chunk
                continue
            hasher.update(chunk)
            if held:
                yield held
            held = chunk
        self._release()
        if hasher is not None:
            actual = "sha256:" + hasher.hexdigest()
            if actual != self.digest:
                raise VerificationFailed(
                    f"blob {self.repo}@{self.digest} from registry {self._transport.registry} has digest {actual}"
                )
            if held:
                yield held

    async def _read_chunk(self) -> bytes:
        """Up to CHUNK_SIZE bytes of the wanted range; b"" at its end."""
        assert self._resp is not None
        buffer = bytearray()
        while len(buffer) < CHUNK_SIZE and self._remaining != 0:
            if self._skip:  # only when the registry ignored our Range header
                want = min(self._skip, CHUNK_SIZE)
            elif self._remaining is None:
                want = CHUNK_SIZE - len(buffer)
            else:
                want = min(CHUNK_SIZE - len(buffer), self._remaining)
            try:
                data = await self._resp.content.read(want)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._transport.unreachable(exc) from exc
            if not data:
                break
            if self._skip:
                self._skip -= len(data)
                continue
            buffer += data
            if self._remaining is not None:
                self._remaining -= len(data)
        return bytes(buffer)

    def _release(self) -> None:
        if self._resp is None:
            return
        # A body not read to the end leaves the connection unusable, so close it rather than pool it.
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()
        self._resp = None


async def start_upload(transport: Transport, repo: str, digest: str | None, mount_from: str | None) -> URL | None:
    """Open an upload session; None when the blob was mounted from `mount_from` instead."""
    url = transport.url(f"/v2/{repo}/blobs/uploads/")
    scope = push_scope(repo)
    # Cross-repository mount (distribution spec): 201 means done, 202 means upload it after all.
    if mount_from is not None and digest is not None:
        url = url.with_query(mount=digest, **{"from": mount_from})
        scope = f"{scope} {pull_scope(mount_from)}"
    async with await transport.send("POST", url, scope=scope) as resp:
        if resp.status == 201 and mount_from is not None:
            return None
        if resp.status != 202:
            await transport.raise_for_status(resp, f"blob upload to {repo}")
        return transport.location(resp, f"blob upload to {repo}")


async def upload_stream(
    transport: Transport, repo: str, location: URL, chunks: AsyncIterable[bytes], declared: str | None
) -> str:
    """PATCH the stream in ~CHUNK_SIZE pieces while hashing it, then commit; returns the digest."""
    hasher = hashlib.sha256()
    buffer = bytearray()
    sent = 0
    try:
        async for chunk in chunks:
            hasher.update(chunk)
            buffer += chunk
            if len(buffer) >= CHUNK_SIZE:
                location = await _patch(transport, repo, location, bytes(buffer), sent)
                sent += len(buffer)
                buffer.clear()
        digest = "sha256:" + hasher.hexdigest()
        if declared is not None and declared != digest:
            raise VerificationFailed(f"blob for {repo} is {digest}, not the declared {declared}")
        await finish_upload(transport, repo, location, digest, bytes(buffer))
    except Exception:
        # Not on cancellation: waiting for the DELETE would delay it, and registries expire
        # abandoned uploads anyway.
        await _cancel_upload(transport, repo, location)
        raise
    return digest


async def _patch(transport: Transport, repo: str, location: URL, chunk: bytes, start: int) -> URL:
    headers = {
        "Content-Type": "application/octet-stream",
        # The distribution spec's form, without the `bytes ` unit.
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
    }
    async with await transport.send("PATCH", location, scope=push_scope(repo), headers=headers, data=chunk) as resp:
        if resp.status != 202:
            await transport.raise_for_status(resp, f"blob upload to {repo}")
        return transport.location(resp, f"blob upload to {repo}")


async def finish_upload(transport: Transport, repo: str, location: URL, digest: str, body: bytes) -> None:
    """PUT the last bytes (or the whole blob, for a monolithic upload) and commit `digest`."""
    # Append `digest` by hand: yarl would re-encode the opaque upload state in the query.
    sep = "&" if location.raw_query_string else "?"
    url = URL(f"{location}{sep}digest={quote(digest, safe='')}", encoded=True)
    headers = {"Content-Type": "application/octet-stream"}
    async with await transport.send("PUT", url, scope=push_scope(repo), headers=headers, data=body) as resp:
        if resp.status not in (201, 204):
            await transport.raise_for_status(resp, f"blob {repo}@{digest}")
        stored = resp.headers.get("Docker-Content-Digest")
        if stored is not None and stored.startswith("sha256:") and stored != digest:
            raise VerificationFailed(f"registry {transport.registry} stored blob {stored} for {digest} in {repo}")


async def _cancel_upload(transport: Transport, repo: str, location: URL) -> None:
    try:
        async with await transport.send("DELETE", location, scope=push_scope(repo)):
            pass
    except FactoryError:
        pass  # best effort
