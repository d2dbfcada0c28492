"""The embedded asset store: one directory per asset under the state dir.

Layout: `<root>/<key[:2]>/<key>/{blob, meta.json, meta.sig}`. A Put streams into a private temp dir
(`<root>/.incoming/…`), fsyncs, signs the metadata through the signer and then renames the whole
directory into place: an asset is visible complete or not at all, and a Put interrupted at any point
leaves only a temp dir that the next start removes.

Every read verifies first: the metadata signature (through the signer), the metadata's own consistency,
and the blob's size and SHA-256. Hashing a large blob on every read would be wasteful, so a successful
hash is remembered for the file's exact on-disk identity (inode, size, mtime and ctime in nanoseconds);
any write to the file changes ctime, which user space cannot set back, so tampering forces a re-hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from services.cache.model import AssetMeta, PutRequest, Signature, check_key
from services.cache.signing import Signer, refuse, sign_meta
from services.shared.errors import InvalidArgument, NotFound, OutOfRange, PayloadTooLarge
from services.shared.streams import CHUNK_SIZE, read_chunks

# The identity written into the cosign payloads of this store (a name, not a pullable image).
FS_REFERENCE = "local/image-factory/cache"
INCOMING = ".incoming"
_HASH_MEMO_SIZE = 4096

FileIdentity = tuple[int, int, int, int]


def _identity(path: Path) -> FileIdentity:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


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
        self._verified_hashes: OrderedDict[tuple[str, FileIdentity], str] = OrderedDict()

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
        await asyncio.to_thread(staging.mkdir, parents=True)
        try:
            size, digest = await self._receive(staging / "blob", chunks)
            if request.expected_size and size != request.expected_size:
                raise InvalidArgument(f"asset {request.key}: received {size} bytes, expected {request.expected_size}")
            meta = AssetMeta(
                key=request.key,
                size=size,
                digest=digest,
                media_type=request.media_type,
                file_name=request.file_name,
                created_unix=int(time.time()),
            )
            signature = await sign_meta(self._signer, FS_REFERENCE, meta)
            return await asyncio.to_thread(self._publish, staging, meta, signature)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _receive(self, path: Path, chunks: AsyncIterable[bytes]) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self._max:
                    raise PayloadTooLarge(f"asset exceeds the cache limit of {self._max} bytes")
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
        try:
            staging.rename(final)
        except OSError:
            # Another Put of the same key won the race (or a stale copy exists): keep the first
            # verified one; if it is broken, replace it.
            existing = self._load_meta_unverified(meta.key)
            if existing is not None:
                return existing
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        _fsync_dir(final.parent)
        self._remember_hash(final / "blob", meta.digest)
        return meta

    def _load_meta_unverified(self, key: str) -> AssetMeta | None:
        try:
            return AssetMeta.from_json((self._dir(key) / "meta.json").read_bytes())
        except (OSError, ValueError, KeyError):
            return None

    def _remember_hash(self, blob: Path, digest: str) -> None:
        with contextlib.suppress(OSError):
            self._verified_hashes[(str(blob), _identity(blob))] = digest
            while len(self._verified_hashes) > _HASH_MEMO_SIZE:
                self._verified_hashes.popitem(last=False)

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
            refuse(key, "metadata", str(exc))
            raise NotFound(f"asset {key} not found") from None
        problem = await self._signer.verify(signature, meta.document_digest())
        if problem is not None:
            refuse(key, "signature", problem)
            raise NotFound(f"asset {key} not found")
        if meta.key != key:
            refuse(key, "metadata", f"metadata names key {meta.key}")
            raise NotFound(f"asset {key} not found")
        if not await asyncio.to_thread(self._blob_matches, directory / "blob", meta):
            raise NotFound(f"asset {key} not found")
        return meta

    def _blob_matches(self, blob: Path, meta: AssetMeta) -> bool:
        try:
            identity = _identity(blob)
        except FileNotFoundError:
            refuse(meta.key, "blob", "blob missing")
            return False
        if identity[1] != meta.size:
            refuse(meta.key, "blob", f"size {identity[1]} != {meta.size}")
            return False
        if self._verified_hashes.get((str(blob), identity)) == meta.digest:
            return True
        actual = _sha256_file(blob)
        if actual != meta.digest:
            refuse(meta.key, "blob", f"digest {actual} != {meta.digest}")
            return False
        self._remember_hash(blob, meta.digest)
        return True

    async def read(self, key: str, offset: int = 0, length: int = 0) -> tuple[AssetMeta, AsyncIterator[bytes]]:
        """Verify, then stream `length` bytes from `offset` (0 = to the end)."""
        meta = await self.stat(key)
        if offset < 0 or length < 0 or offset > meta.size or (offset == meta.size and meta.size > 0):
            raise OutOfRange(f"range {offset}+{length} is outside asset {key} of {meta.size} bytes")
        span = meta.size - offset if length == 0 else min(length, meta.size - offset)
        return meta, read_chunks(self._dir(key) / "blob", offset=offset, length=span)
