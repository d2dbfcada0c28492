"""The embedded asset store: one directory per asset under the state dir.

Layout: `<root>/<key[:2]>/<key>/{blob, meta.json, meta.sig}`. A Put streams into a private temp dir
(`<root>/.incoming/…`), fsyncs, signs the metadata through the signer and then renames the whole
directory into place: an asset is visible complete or not at all, and a Put interrupted at any point
leaves only a temp dir that the next start removes.

`stat` verifies the metadata signature (through the signer), the metadata's consistency and the blob's
size without reading the body; `read` additionally checks the blob's SHA-256 before the first byte
(remembered per file state, see `verified_files`). An asset that fails any check is a miss, counted and
logged, and is removed so that the next request rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import NoReturn

from services.cache.model import (
    AssetMeta,
    LocatedBlob,
    PutRequest,
    Signature,
    SizeLimit,
    byte_span,
    check_key,
    received_meta,
)
from services.cache.signing import Signer, refuse, sign_meta
from services.cache.verified_files import VerifiedFiles
from services.shared.errors import NO_SPACE_ERRNOS, InsufficientStorage, NotFound
from services.shared.streams import read_chunks

log = logging.getLogger(__name__)

# The identity written into the cosign payloads of this store (a name, not a pullable image).
FS_REFERENCE = "local/image-factory/cache"
INCOMING = ".incoming"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class FilesystemStore:
    def __init__(self, root: Path, signer: Signer, *, max_asset_bytes: int) -> None:
        self.root = root
        self._signer = signer
        self._max = max_asset_bytes
        self._verified = VerifiedFiles()

    def prepare(self) -> None:
        """Create the root and drop leftovers of interrupted Puts (they were never visible)."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / INCOMING, ignore_errors=True)
        (self.root / INCOMING).mkdir()

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def put(self, request: PutRequest, chunks: AsyncIterable[bytes]) -> AssetMeta:
        check_key(request.key)
        staging = self.root / INCOMING / uuid.uuid4().hex
        try:
            await asyncio.to_thread(staging.mkdir, parents=True)
            size, digest = await self._receive(staging / "blob", SizeLimit(self._max).watch(chunks))
            meta = received_meta(request, size, digest)
            signature = await sign_meta(self._signer, FS_REFERENCE, meta)
            return await asyncio.to_thread(self._publish, staging, meta, signature)
        except OSError as exc:
            if exc.errno not in NO_SPACE_ERRNOS:
                raise
            log.warning("the cache volume is full", extra={"key": request.key, "error": str(exc)})
            raise InsufficientStorage(
                f"storing asset {request.key} failed: no space left on the cache volume"
            ) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _receive(self, path: Path, chunks: AsyncIterable[bytes]) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            await asyncio.to_thread(handle.close)
        return size, "sha256:" + digest.hexdigest()

    def _publish(self, staging: Path, meta: AssetMeta, signature: Signature) -> AssetMeta:
        _write_file(staging / "meta.json", meta.to_json())
        _write_file(staging / "meta.sig", signature.to_json())
        _fsync_dir(staging)
        final = self._dir(meta.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Last writer wins, as a registry tag does: most keys name immutable content (the same bytes
        # again), but some entries are records that change (installer tags). The old directory is moved
        # aside first; readers in between see a miss, never a mix of old and new files.
        for _ in range(8):
            try:
                staging.rename(final)
                break
            except OSError:
                with contextlib.suppress(OSError):
                    final.rename(self.root / INCOMING / f"replaced-{uuid.uuid4().hex}")
        else:
            raise OSError(f"could not publish asset {meta.key}: the key kept changing")
        for replaced in (self.root / INCOMING).glob("replaced-*"):
            shutil.rmtree(replaced, ignore_errors=True)
        _fsync_dir(final.parent)
        # A concurrent Put of the same key may already have replaced this directory.
        with contextlib.suppress(OSError):
            self._verified.remember(final / "blob", meta.digest)
        return meta

    async def stat(self, key: str) -> AssetMeta:
        """Verified metadata of an asset, or NotFound (also for anything that does not verify)."""
        check_key(key)
        directory = self._dir(key)
        try:
            meta_bytes = await asyncio.to_thread((directory / "meta.json").read_bytes)
            sig_bytes = await asyncio.to_thread((directory / "meta.sig").read_bytes)
        except FileNotFoundError:
            raise NotFound(f"asset {key} not found") from None
        try:
            meta = AssetMeta.from_json(meta_bytes)
            signature = Signature.from_json(sig_bytes)
        except (ValueError, KeyError, TypeError) as exc:
            await self._quarantine(key, "metadata", str(exc))
        problem = await self._signer.verify(signature, meta.document_digest())
        if problem is not None:
            await self._quarantine(key, "signature", problem)
        if meta.key != key:
            await self._quarantine(key, "metadata", f"metadata names key {meta.key}")
        try:
            size = await asyncio.to_thread(lambda: (directory / "blob").stat().st_size)
        except FileNotFoundError:
            size = -1
        if size != meta.size:
            await self._quarantine(key, "blob", f"blob size {size} != {meta.size}")
        return meta

    async def _quarantine(self, key: str, reason: str, detail: str) -> NoReturn:
        """Refuse an asset and remove it, so the next request rebuilds instead of failing again."""
        refuse(key, reason, detail)
        doomed = self.root / INCOMING / f"refused-{uuid.uuid4().hex}"
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._dir(key).rename, doomed)
            await asyncio.to_thread(shutil.rmtree, doomed, True)
        raise NotFound(f"asset {key} not found")

    async def locate(self, key: str) -> LocatedBlob:
        """Verify the asset, its blob's size and SHA-256 included; NotFound for anything that does not."""
        meta = await self.stat(key)
        blob = self._dir(key) / "blob"
        problem, ident = await asyncio.to_thread(self._verified.check, blob, meta.size, meta.digest)
        if problem is not None or ident is None:
            await self._quarantine(key, "blob", problem or "blob missing")
        return LocatedBlob(meta, blob.absolute(), ident)

    async def read(self, key: str, offset: int = 0, length: int = 0) -> tuple[AssetMeta, AsyncIterator[bytes]]:
        """Verify, then stream `length` bytes from `offset` (0 = to the end)."""
        located = await self.locate(key)
        span = byte_span(located.meta, offset, length)
        return located.meta, read_chunks(located.path, offset=offset, length=span)
