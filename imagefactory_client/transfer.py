"""Resumable downloads: one function behind asset, talosctl and bundle downloads.

Bytes go to `<dest>.part`; the response's strong `ETag` is kept beside it in `<dest>.part.etag`. A later
attempt (in the same call after a cut connection, or a new process) asks for `Range: bytes=<size of
.part>-` with `If-Range: <etag>`, so a changed asset comes back whole (200) instead of spliced. The
answer is trusted only as far as it proves itself:

* 206 must carry `Content-Range: bytes <offset>-<total-1>/<total>`; anything else drops the `.part`;
* 200 means the server ignored the range (or the validator changed): the body is written from byte 0;
* 416 with `bytes */<size of .part>` means the `.part` is already complete.

The factory's ETag is `"sha256:<hex>"` of the bytes (gateway/images.py); when present the finished file
must hash to it before it is renamed into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from imagefactory_client.errors import DownloadInterrupted, IntegrityError, TransportError, error_for
from imagefactory_client.models import Downloaded

# done, total (None when the server did not say)
Progress = Callable[[int, int | None], None]

CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")
_SHA256_ETAG = re.compile(r'^"sha256:([0-9a-f]{64})"$')


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def etag_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.etag")


@dataclass(frozen=True)
class Options:
    """How hard to try: `retries` more attempts after a cut, `rate_limit` in bytes/s (None: unlimited)."""

    retries: int = 3
    retry_delay: float = 1.0
    rate_limit: float | None = None
    progress: Progress | None = None
    headers: Mapping[str, str] | None = None


class _Restart(Exception):
    """The `.part` cannot be continued; start again from byte 0 (does not count as a failure)."""


def parse_content_range(value: str | None) -> tuple[int, int, int]:
    """(first, last, total) of a `Content-Range: bytes a-b/n`; IntegrityError if absent or malformed."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        raise IntegrityError(f"206 answer with an unusable Content-Range: {value!r}")
    first, last, total = (int(g) for g in match.groups())
    if first > last or last >= total:
        raise IntegrityError(f"206 answer with an inconsistent Content-Range: {value!r}")
    return first, last, total


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest


def _strong_etag(headers: Mapping[str, str]) -> str | None:
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else None


class _Pacer:
    """Sleeps just enough to keep an average rate (curl's --limit-rate)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    async def account(self, n: int) -> None:
        if not self.rate:
            return
        self.sent += n
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def download(session: aiohttp.ClientSession, url: str, dest: Path, options: Options | None = None) -> Downloaded:
    """GET `url` into `dest`, resuming an existing `.part` and retrying cut connections."""
    opts = options or Options()
    dest.parent.mkdir(parents=True, exist_ok=True)
    attempts = 0
    failures = 0
    while True:
        attempts += 1
        try:
            return await _attempt(session, url, dest, opts, attempts)
        except _Restart:
            part_path(dest).unlink(missing_ok=True)
            etag_path(dest).unlink(missing_ok=True)
            failures += 1
            if failures > opts.retries + 1:
                raise IntegrityError(f"{url}: the server keeps answering ranges that do not fit") from None
        except TransportError:
            failures += 1
            if failures > opts.retries:
                raise
            await asyncio.sleep(opts.retry_delay * failures)


async def _attempt(session: aiohttp.ClientSession, url: str, dest: Path, opts: Options, attempts: int) -> Downloaded:
    part, etag_file = part_path(dest), etag_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    headers = dict(opts.headers or {})
    # Hash what is already there before asking: once the body flows it must be read at once, since
    # aiohttp drops bytes still buffered when a cut connection surfaces as an error.
    digest = await asyncio.to_thread(_hash_file, part) if offset else hashlib.sha256()
    if offset:
        headers["Range"] = f"bytes={offset}-"
        with contextlib.suppress(FileNotFoundError):
            headers["If-Range"] = etag_file.read_text().strip()
    try:
        async with session.get(url, headers=headers) as response:
            if response.status == 416 and offset:
                match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != offset:
                    raise _Restart
                # Everything was there already; an interrupted run just had not renamed it yet.
                return await _finish(dest, headers.get("If-Range"), offset, None, attempts)
            if response.status >= 400:
                body = await response.text(errors="replace")
                raise error_for(response.status, body, response.headers.get("X-Request-ID"))
            total: int | None
            if response.status == 206:
                first, _, total = parse_content_range(response.headers.get("Content-Range"))
                if first != offset:
                    raise _Restart
            elif response.status == 200:
                offset, total = 0, response.content_length  # the server ignored the range: restart
                digest = hashlib.sha256()
            else:
                raise IntegrityError(f"{url}: unexpected status {response.status} for a download")
            etag = _strong_etag(response.headers)
            if etag:
                etag_file.write_text(etag)
            size = await _receive(response, part, offset, total, digest, opts)
    except aiohttp.ClientPayloadError as exc:
        raise DownloadInterrupted(f"{url}: connection lost mid-body ({exc})", str(part), _size(part)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TransportError(f"{url}: {exc or type(exc).__name__}") from None
    if total is not None and size != total:
        raise DownloadInterrupted(f"{url}: got {size} of {total} bytes", str(part), size)
    return await _finish(dest, etag, offset, digest, attempts)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _receive(
    response: aiohttp.ClientResponse, part: Path, offset: int, total: int | None, digest: hashlib._Hash, opts: Options
) -> int:
    """Append the body to `part` (truncated first when offset is 0); returns the file's size after."""
    pacer = _Pacer(opts.rate_limit)
    chunk = CHUNK if not opts.rate_limit else max(1024, min(CHUNK, int(opts.rate_limit / 10)))
    done = offset
    with part.open("ab" if offset else "wb") as handle:
        if opts.progress:
            opts.progress(done, total)
        async for block in response.content.iter_chunked(chunk):
            handle.write(block)
            digest.update(block)
            done += len(block)
            if opts.progress:
                opts.progress(done, total)
            await pacer.account(len(block))
    return done


async def _finish(dest: Path, etag: str | None, offset: int, digest: hashlib._Hash | None, attempts: int) -> Downloaded:
    part = part_path(dest)
    if digest is None:
        digest = await asyncio.to_thread(_hash_file, part)
    hexdigest = digest.hexdigest()
    match = _SHA256_ETAG.match(etag or "")
    if match and match.group(1) != hexdigest:
        part.unlink(missing_ok=True)
        etag_path(dest).unlink(missing_ok=True)
        raise IntegrityError(f"{dest.name}: downloaded bytes hash to sha256:{hexdigest}, the server announced {etag}")
    size = part.stat().st_size
    part.replace(dest)
    etag_path(dest).unlink(missing_ok=True)
    return Downloaded(path=dest, size=size, sha256=hexdigest, resumed_from=offset, attempts=attempts)
