"""The OCI registry asset store (factory spec §8.2), with a local verified spool for reads.

Each asset is an image in one repository, tagged with its key: an OCI manifest with exactly one layer
of media type `application/data` (the bytes), our metadata in annotations, and a cosign simple-signing
signature stored as the `sha256-<manifest hex>.sig` tag (spec §9.4). Publishing order: blobs → manifest
by digest → signature → tag, so a tag never points at something unsigned.

`stat` verifies the signature and the manifest without touching the blob. `read` first copies the blob
into a local spool, checking its SHA-256 against the signed manifest, and only then serves bytes, so
nothing is served before it is verified, and later reads (and ranges) come from local disk. An asset that
fails verification is a miss, counted and logged, and its manifest is deleted so the next request
rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

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
from services.cache.signing import Signer, refuse
from services.cache.verified_files import FileIdentity, VerifiedFiles
from services.shared.errors import NotFound, VerificationFailed
from services.shared.oci import AccessDenied, Manifest, RegistryClient, digest_of, signature_tag
from services.shared.oci import media_types as mt
from services.shared.oci.cosign import SIGNATURE_ANNOTATION, signature_manifest
from services.shared.streams import read_chunks

ASSET_LAYER = mt.APPLICATION_DATA
ANNOTATION_KEY = "dev.image-factory.asset.key"
ANNOTATION_MEDIA_TYPE = "dev.image-factory.asset.media-type"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _created(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RegistryStore:
    def __init__(
        self, client: RegistryClient, repository: str, signer: Signer, spool: Path, *, max_asset_bytes: int
    ) -> None:
        self._client = client
        self._repo = repository
        self._signer = signer
        self._spool = spool
        self._max = max_asset_bytes
        self._verified = VerifiedFiles()
        self._spooling: dict[str, asyncio.Lock] = {}
        self._putting: dict[str, asyncio.Lock] = {}

    @property
    def reference(self) -> str:
        """The identity written into signatures: `<registry>/<repository>` (spec §9.4)."""
        return f"{self._client.registry}/{self._repo}"

    def prepare(self) -> None:
        self._spool.mkdir(parents=True, exist_ok=True)
        for leftover in self._spool.glob("*.partial"):
            leftover.unlink(missing_ok=True)

    # --- put ----------------------------------------------------------------------------------

    async def put(self, request: PutRequest, chunks: AsyncIterable[bytes]) -> AssetMeta:
        check_key(request.key)
        # Concurrent uploads of one blob make distribution answer 500; within a process they queue here,
        # across builder replicas the asset-key routing (deploy/envoy) keeps one owner per key.
        lock = self._putting.setdefault(request.key, asyncio.Lock())
        async with lock:
            return await self._put(request, chunks)

    async def _put(self, request: PutRequest, chunks: AsyncIterable[bytes]) -> AssetMeta:
        limit = SizeLimit(self._max)
        blob_digest = await self._client.push_blob(self._repo, limit.watch(chunks))
        meta = received_meta(request, limit.size, blob_digest)
        manifest_digest = await self._push_manifest(meta)
        signature = await self._signer.sign(self.reference, manifest_digest)
        await self._push_signature(manifest_digest, signature, meta.created_unix)
        await self._client.put_manifest(
            self._repo, request.key, self._manifest_bytes(meta, self._config), mt.OCI_MANIFEST
        )
        return meta

    @property
    def _config(self) -> bytes:
        return _json({"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": []}})

    def _manifest_bytes(self, meta: AssetMeta, config: bytes) -> bytes:
        return _json(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [
                    {
                        "mediaType": ASSET_LAYER,
                        "digest": meta.digest,
                        "size": meta.size,
                        "annotations": {ANNOTATION_TITLE: meta.file_name},
                    }
                ],
                "annotations": {
                    ANNOTATION_KEY: meta.key,
                    ANNOTATION_MEDIA_TYPE: meta.media_type,
                    ANNOTATION_CREATED: _created(meta.created_unix),
                },
            }
        )

    async def _push_manifest(self, meta: AssetMeta) -> str:
        await self._client.push_blob(self._repo, self._config)
        data = self._manifest_bytes(meta, self._config)
        return await self._client.put_manifest(self._repo, digest_of(data), data, mt.OCI_MANIFEST)

    async def _push_signature(self, manifest_digest: str, signature: Signature, created: int) -> None:
        config = _json({"architecture": "", "os": "", "created": _created(created), "rootfs": {"type": "layers"}})
        await self._client.push_blob(self._repo, config)
        await self._client.push_blob(self._repo, signature.payload)
        manifest = signature_manifest(config, signature.payload, signature.signature_base64)
        await self._client.put_manifest(self._repo, signature_tag(manifest_digest), manifest, mt.OCI_MANIFEST)

    # --- stat and read ------------------------------------------------------------------------

    async def stat(self, key: str) -> AssetMeta:
        check_key(key)
        try:
            descriptor = await self._client.head_manifest(self._repo, key)
        except AccessDenied:  # spec §8.2: 403 reads as a miss
            descriptor = None
        if descriptor is None:
            raise NotFound(f"asset {key} not found")
        problem = await self._signature_problem(descriptor.digest)
        if problem is not None:
            await self._quarantine(key, descriptor.digest, "signature", problem)
        manifest = await self._client.get_manifest(self._repo, descriptor.digest)
        try:
            return self._meta_from(key, manifest)
        except (KeyError, ValueError, TypeError) as exc:
            await self._quarantine(key, descriptor.digest, "metadata", str(exc))

    async def _signature_problem(self, manifest_digest: str) -> str | None:
        try:
            sig_manifest = await self._client.get_manifest(self._repo, signature_tag(manifest_digest))
        except NotFound:
            return "no signature"
        layers = sig_manifest.layers()
        if len(layers) != 1 or layers[0].media_type != mt.COSIGN_SIMPLE_SIGNING:
            return "signature manifest must have exactly one simple-signing layer"
        signature_b64 = (layers[0].annotations or {}).get(SIGNATURE_ANNOTATION)
        if not signature_b64:
            return "signature annotation missing"
        payload = await self._client.get_blob(self._repo, layers[0].digest)
        return await self._signer.verify(Signature(payload, signature_b64), manifest_digest)

    @staticmethod
    def _meta_from(key: str, manifest: Manifest) -> AssetMeta:
        (layer,) = manifest.layers()
        annotations = manifest.json().get("annotations") or {}
        if layer.media_type != ASSET_LAYER or annotations.get(ANNOTATION_KEY) != key:
            raise ValueError("manifest is not an asset of this key")
        created = datetime.strptime(annotations[ANNOTATION_CREATED], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return AssetMeta(
            key=key,
            size=layer.size,
            digest=layer.digest,
            media_type=str(annotations[ANNOTATION_MEDIA_TYPE]),
            file_name=str((layer.annotations or {}).get(ANNOTATION_TITLE, "")),
            created_unix=int(created.timestamp()),
        )

    async def _quarantine(self, key: str, manifest_digest: str, reason: str, detail: str) -> NoReturn:
        refuse(key, reason, detail)
        with contextlib.suppress(Exception):  # best effort: a registry without deletes just keeps refusing
            await self._client.delete_manifest(self._repo, manifest_digest)
        raise NotFound(f"asset {key} not found")

    async def locate(self, key: str) -> LocatedBlob:
        """Verify the asset and return its blob's verified local copy (downloaded once into the spool)."""
        meta = await self.stat(key)
        path, ident = await self._spooled(meta)
        return LocatedBlob(meta, path.absolute(), ident)

    async def read(self, key: str, offset: int = 0, length: int = 0) -> tuple[AssetMeta, AsyncIterator[bytes]]:
        located = await self.locate(key)
        span = byte_span(located.meta, offset, length)
        return located.meta, read_chunks(located.path, offset=offset, length=span)

    async def _spooled(self, meta: AssetMeta) -> tuple[Path, FileIdentity]:
        """The verified local copy of the asset's blob, downloading it once (single-flight per digest)."""
        path = self._spool / meta.digest.removeprefix("sha256:")
        lock = self._spooling.setdefault(meta.digest, asyncio.Lock())
        async with lock:
            problem, ident = await asyncio.to_thread(self._verified.check, path, meta.size, meta.digest)
            if problem is None and ident is not None:
                return path, ident
            partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
            try:
                await self._download(meta, partial)
            except VerificationFailed as exc:
                # The registry's copy is corrupt: drop the blob too, or a re-upload would be skipped.
                with contextlib.suppress(Exception):
                    await self._client.delete_blob(self._repo, meta.digest)
                await self._quarantine_by_key(meta.key, "blob", exc.message)
            finally:
                partial.unlink(missing_ok=True)  # gone already after a successful rename
            problem, ident = await asyncio.to_thread(self._verified.check, path, meta.size, meta.digest)
            if problem is not None or ident is None:
                await self._quarantine_by_key(meta.key, "blob", problem or "blob missing")
            return path, ident

    async def _download(self, meta: AssetMeta, partial: Path) -> None:
        handle = await asyncio.to_thread(partial.open, "wb")
        try:
            async with self._client.open_blob(self._repo, meta.digest) as blob:
                async for chunk in blob:
                    await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            await asyncio.to_thread(handle.close)
        final = self._spool / meta.digest.removeprefix("sha256:")
        await asyncio.to_thread(partial.replace, final)
        self._verified.remember(final, meta.digest)

    async def _quarantine_by_key(self, key: str, reason: str, detail: str) -> NoReturn:
        descriptor = await self._client.head_manifest(self._repo, key)
        if descriptor is None:
            refuse(key, reason, detail)
            raise NotFound(f"asset {key} not found")
        await self._quarantine(key, descriptor.digest, reason, detail)
