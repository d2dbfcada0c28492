"""Installer images for the registry frontend: build per arch, index, sign, then tag (spec §9.2).

The embedded store is the cache itself: every blob and manifest is a cache entry keyed by its digest
(the cache signs and verifies each one), and a tag is a small record keyed by a hash of
(repository, tag) that names the index digest. Publishing follows the reference's order strictly:
content by digest → cosign signature over the index digest (through the signer) → the signature is
read back and verified → only then the tag. A tag whose signature does not verify is rebuilt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.builder.getorbuild import AssetBuilder, StoredAsset
from services.builder.planning import Planner
from services.builder.profile import parse_installer_image
from services.shared.errors import NotFound, VerificationFailed
from services.shared.oci import Descriptor, Platform, digest_of, index_bytes
from services.shared.oci import media_types as mt
from services.shared.oci.cosign import SIGNATURE_ANNOTATION, signature_manifest
from services.shared.singleflight import SingleFlight

ARCHES = ("amd64", "arm64")  # always both, as the reference does (spec §9.2 step 7)
EMPTY_CONFIG = b"{}"


class ContentStore(Protocol):
    async def get_bytes(self, key: str) -> tuple[bytes, str] | None: ...

    async def put_bytes(self, key: str, media_type: str, name: str, data: bytes) -> None: ...

    async def put_file(self, key: str, media_type: str, name: str, path: Path) -> None: ...

    async def read_to(self, key: str, path: Path) -> None: ...


class CosignSigner(Protocol):
    async def sign(self, reference: str, digest: str) -> tuple[bytes, str]: ...

    async def verify(self, payload: bytes, signature_b64: str, digest: str) -> bool: ...


@dataclass(frozen=True)
class PublishedIndex:
    digest: str
    size: int
    media_type: str
    manifests: tuple[tuple[str, str, int, str], ...]  # (arch, digest, size, media type)


def tag_key(repository: str, tag: str) -> str:
    """Cache key of a tag record. Signature tags (`sha256-<hex>.sig`) name their image by digest,
    which is unique on its own, so they are keyed without the repository."""
    if tag.startswith("sha256-") and tag.endswith(".sig"):
        repository = ""
    return hashlib.sha256(f"tag\0{repository}\0{tag}".encode()).hexdigest()


def content_key(digest: str) -> str:
    return digest.removeprefix("sha256:")


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


class InstallerRegistry:
    def __init__(
        self,
        store: ContentStore,
        signer: CosignSigner,
        planner: Planner,
        assets: AssetBuilder,
        identity: str,
    ) -> None:
        self._store = store
        self._signer = signer
        self._planner = planner
        self._assets = assets
        self._identity = identity.rstrip("/")  # `<factory host>`: signatures name `<host>/<image>/<id>`
        self._flight = SingleFlight()

    def repository(self, image: str, schematic_id: str) -> str:
        return f"{image}/{schematic_id}"

    async def tagged(self, image: str, schematic_id: str, tag: str) -> PublishedIndex | None:
        """The published index of a tag, if its signature verifies (otherwise it does not count)."""
        record = await self._store.get_bytes(tag_key(self.repository(image, schematic_id), tag))
        if record is None:
            return None
        published = _index_from_record(json.loads(record[0]))
        if tag.endswith(".sig") or await self._signature_valid(published.digest):
            return published
        return None

    async def ensure(self, image: str, schematic_id: str, version: str) -> PublishedIndex:
        parse_installer_image(image)  # 400 `invalid image: …` before any work
        hit = await self.tagged(image, schematic_id, version)
        if hit is not None:
            return hit
        repository = self.repository(image, schematic_id)
        return await self._flight.run(f"{repository}:{version}", lambda: self._build(image, schematic_id, version))

    async def _build(self, image: str, schematic_id: str, version: str) -> PublishedIndex:
        platform, secureboot = parse_installer_image(image)
        suffix = "-secureboot" if secureboot else ""
        children: list[Descriptor] = []
        manifests = []
        for arch in ARCHES:
            path = f"{platform.value}-installer-{arch}{suffix}.tar"
            plan = await self._planner.plan(schematic_id, version, path)
            stored = await _final(self._assets, plan.request)
            manifest, media_type = await self._publish_archive(stored)
            digest = digest_of(manifest)
            children.append(Descriptor(media_type, digest, len(manifest), platform=Platform("linux", arch)))
            manifests.append((arch, digest, len(manifest), media_type))
        index = index_bytes(children)
        index_digest = digest_of(index)
        await self._store.put_bytes(content_key(index_digest), mt.OCI_INDEX, "index.json", index)
        await self._sign(self.repository(image, schematic_id), index_digest)
        if not await self._signature_valid(index_digest):  # read back before the tag exists (spec §9.2)
            raise VerificationFailed(f"the signature of {index_digest} did not verify after publishing")
        published = PublishedIndex(index_digest, len(index), mt.OCI_INDEX, tuple(manifests))
        record = json.dumps(_record(published)).encode()
        await self._store.put_bytes(
            tag_key(self.repository(image, schematic_id), version), "application/json", "tag", record
        )
        return published

    async def _publish_archive(self, stored: StoredAsset) -> tuple[bytes, str]:
        """Docker archive → its config and layer blobs in the store, and the image manifest bytes."""
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "image.tar"
            await self._store.read_to(stored.key, archive)
            config_name, layer_names = await asyncio.to_thread(_archive_index, archive)
            extracted = Path(tmp) / "x"
            await asyncio.to_thread(_extract, archive, extracted)
            config = (extracted / config_name).read_bytes()
            config_digest = digest_of(config)
            await self._store.put_bytes(content_key(config_digest), mt.OCI_CONFIG, "config", config)
            layers = []
            for name in layer_names:
                path = extracted / name
                digest = await asyncio.to_thread(_file_digest, path)
                await self._store.put_file(content_key(digest), mt.OCI_LAYER_GZIP, name, path)
                layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": digest, "size": path.stat().st_size})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": layers,
            },
            separators=(",", ":"),
        ).encode()
        await self._store.put_bytes(content_key(digest_of(manifest)), mt.OCI_MANIFEST, "manifest", manifest)
        return manifest, mt.OCI_MANIFEST

    async def _sign(self, repository: str, digest: str) -> None:
        payload, signature = await self._signer.sign(f"{self._identity}/{repository}", digest)
        await self._store.put_bytes(content_key(digest_of(payload)), mt.COSIGN_SIMPLE_SIGNING, "payload", payload)
        await self._store.put_bytes(content_key(digest_of(EMPTY_CONFIG)), mt.OCI_CONFIG, "config", EMPTY_CONFIG)
        manifest = signature_manifest(EMPTY_CONFIG, payload, signature)
        sig_digest = digest_of(manifest)
        await self._store.put_bytes(content_key(sig_digest), mt.OCI_MANIFEST, "signature", manifest)
        record = _record(PublishedIndex(sig_digest, len(manifest), mt.OCI_MANIFEST, ()))
        await self._store.put_bytes(
            tag_key(repository, signature_tag(digest)), "application/json", "tag", json.dumps(record).encode()
        )

    async def _signature_valid(self, digest: str) -> bool:
        try:
            record = await self._store.get_bytes(tag_key("", signature_tag(digest)))
            if record is None:
                return False
            sig = _index_from_record(json.loads(record[0]))
            manifest = await self._store.get_bytes(content_key(sig.digest))
            if manifest is None:
                return False
            layer = json.loads(manifest[0])["layers"][0]
            payload = await self._store.get_bytes(content_key(layer["digest"]))
            if payload is None:
                return False
            return await self._signer.verify(payload[0], layer["annotations"][SIGNATURE_ANNOTATION], digest)
        except (KeyError, IndexError, ValueError, NotFound):
            return False


async def _final(assets: AssetBuilder, request: Any) -> StoredAsset:
    result: StoredAsset | None = None
    async for event in assets.ensure(request):
        if isinstance(event, StoredAsset):
            result = event
    assert result is not None
    return result


def _record(published: PublishedIndex) -> dict[str, Any]:
    return {
        "digest": published.digest,
        "size": published.size,
        "media_type": published.media_type,
        "manifests": [list(m) for m in published.manifests],
    }


def _index_from_record(record: dict[str, Any]) -> PublishedIndex:
    manifests = tuple((str(a), str(d), int(s), str(m)) for a, d, s, m in record.get("manifests", []))
    return PublishedIndex(str(record["digest"]), int(record["size"]), str(record["media_type"]), manifests)


def _archive_index(archive: Path) -> tuple[str, Sequence[str]]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        (entry,) = json.load(member)
    return str(entry["Config"]), [str(name) for name in entry["Layers"]]


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
