"""Where published installer images live, in OCI terms: blobs and manifests by digest, and tags.

`InstallerRegistry` publishes through the `ImageRepository` protocol. Two implementations:
- `EmbeddedImageRepository` (here): the signed asset cache is the registry. Every blob and manifest is
  a cache entry keyed by its digest (the cache signs and verifies each one); a tag is a small record,
  keyed by a hash of (repository, tag), that names a manifest digest. The gateway serves them.
- `RegistryImageRepository` (adapters/registry_images.py): a real OCI registry, which the gateway
  redirects or proxies clients to (spec §9.5).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

from services.shared.oci import digest_of, is_digest
from services.shared.oci import media_types as mt


class ContentStore(Protocol):
    """The cache, as the embedded repository needs it."""

    async def get_bytes(self, key: str) -> tuple[bytes, str] | None: ...

    async def put_bytes(self, key: str, media_type: str, name: str, data: bytes) -> None: ...

    async def put_file(self, key: str, media_type: str, name: str, path: Path) -> None: ...


class ImageRepository(Protocol):
    # `<registry>[/<namespace>]` of the repositories: signatures name `<identity>/<image>/<schematic>`.
    identity: str

    async def put_blob(self, repo: str, media_type: str, data: bytes) -> None: ...

    async def put_blob_file(self, repo: str, media_type: str, path: Path, digest: str) -> None: ...

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> None:
        """Store a manifest under its digest (`reference` = that digest) or under a tag."""
        ...

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's bytes and media type by digest or tag; None when there is none."""
        ...

    async def get_blob(self, repo: str, digest: str) -> bytes | None: ...


def tag_key(repository: str, tag: str) -> str:
    """Cache key of a tag record. Signature tags (`sha256-<hex>.sig`) name their image by digest,
    which is unique on its own, so they are keyed without the repository."""
    if tag.startswith("sha256-") and tag.endswith(".sig"):
        repository = ""
    return hashlib.sha256(f"tag\0{repository}\0{tag}".encode()).hexdigest()


def content_key(digest: str) -> str:
    return digest.removeprefix("sha256:")


class EmbeddedImageRepository:
    def __init__(self, store: ContentStore, identity: str) -> None:
        self._store = store
        self.identity = identity.rstrip("/")

    async def put_blob(self, repo: str, media_type: str, data: bytes) -> None:
        await self._store.put_bytes(content_key(digest_of(data)), media_type, "blob", data)

    async def put_blob_file(self, repo: str, media_type: str, path: Path, digest: str) -> None:
        await self._store.put_file(content_key(digest), media_type, path.name, path)

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> None:
        digest = digest_of(data)
        await self._store.put_bytes(content_key(digest), media_type, _entry_name(reference, media_type), data)
        if not is_digest(reference):
            record = {"digest": digest, "size": len(data), "media_type": media_type}
            await self._store.put_bytes(
                tag_key(repo, reference), "application/json", "tag", json.dumps(record).encode()
            )

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str] | None:
        digest = reference
        if not is_digest(reference):
            record = await self._store.get_bytes(tag_key(repo, reference))
            if record is None:
                return None
            digest = str(json.loads(record[0])["digest"])
        found = await self._store.get_bytes(content_key(digest))
        if found is None or digest_of(found[0]) != digest:
            return None
        return found

    async def get_blob(self, repo: str, digest: str) -> bytes | None:
        found = await self._store.get_bytes(content_key(digest))
        return None if found is None else found[0]


def _entry_name(reference: str, media_type: str) -> str:
    """A readable file name for the cache entry (operators and tests look for signatures by it)."""
    if reference.endswith(".sig"):
        return "signature"
    return "index.json" if mt.is_index(media_type) else "manifest"
