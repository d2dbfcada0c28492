"""Installer images for the registry frontend: build per arch, index, sign, then tag (spec §9.2).

Publishing follows the reference's order strictly: content by digest → cosign signature over the index
digest (through the signer) → the signature is read back and verified → only then the tag. A tag whose
signature does not verify is rebuilt. Where the images go is an `ImageRepository` (installer_store.py):
the embedded signed cache, or a real registry.
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
from services.builder.installer_store import ImageRepository
from services.builder.planning import Planner
from services.builder.profile import parse_installer_image
from services.shared.errors import NotFound, VerificationFailed
from services.shared.oci import Descriptor, Platform, digest_of, index_bytes, signature_tag
from services.shared.oci import media_types as mt
from services.shared.oci.cosign import SIGNATURE_ANNOTATION, signature_manifest
from services.shared.singleflight import SingleFlight

ARCHES = ("amd64", "arm64")  # always both, as the reference does (spec §9.2 step 7)
EMPTY_CONFIG = b"{}"


class ArchiveSource(Protocol):
    """Reads a built asset (the installer's Docker archive) into a file."""

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

    @classmethod
    def from_manifest(cls, data: bytes, media_type: str) -> PublishedIndex:
        """An index lists its per-arch children; anything else (a signature manifest) has none."""
        children: list[tuple[str, str, int, str]] = []
        if mt.is_index(media_type):
            for child in json.loads(data).get("manifests", []):
                arch = str((child.get("platform") or {}).get("architecture", ""))
                children.append((arch, str(child["digest"]), int(child["size"]), str(child["mediaType"])))
        return cls(digest_of(data), len(data), media_type, tuple(children))


class InstallerRegistry:
    def __init__(
        self,
        repository: ImageRepository,
        archives: ArchiveSource,
        signer: CosignSigner,
        planner: Planner,
        assets: AssetBuilder,
    ) -> None:
        self._repo = repository
        self._archives = archives
        self._signer = signer
        self._planner = planner
        self._assets = assets
        self._flight = SingleFlight()

    def repository(self, image: str, schematic_id: str) -> str:
        return f"{image}/{schematic_id}"

    async def tagged(self, image: str, schematic_id: str, tag: str) -> PublishedIndex | None:
        """The published index of a tag, if its signature verifies (otherwise it does not count)."""
        repo = self.repository(image, schematic_id)
        try:
            found = await self._repo.get_manifest(repo, tag)
            if found is None:
                return None
            published = PublishedIndex.from_manifest(*found)
        except (KeyError, ValueError, TypeError):
            return None  # not a manifest we published: rebuild
        if tag.endswith(".sig") or await self._signature_valid(repo, published.digest):
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
        repo = self.repository(image, schematic_id)
        children: list[Descriptor] = []
        for arch in ARCHES:
            path = f"{platform.value}-installer-{arch}{suffix}.tar"
            plan = await self._planner.plan(schematic_id, version, path)
            stored = await _final(self._assets, plan.request)
            manifest = await self._publish_archive(repo, stored)
            children.append(
                Descriptor(mt.OCI_MANIFEST, digest_of(manifest), len(manifest), platform=Platform("linux", arch))
            )
        index = index_bytes(children)
        index_digest = digest_of(index)
        await self._repo.put_manifest(repo, index_digest, index, mt.OCI_INDEX)
        await self._sign(repo, index_digest)
        if not await self._signature_valid(repo, index_digest):  # read back before the tag exists (spec §9.2)
            raise VerificationFailed(f"the signature of {index_digest} did not verify after publishing")
        await self._repo.put_manifest(repo, version, index, mt.OCI_INDEX)
        return PublishedIndex.from_manifest(index, mt.OCI_INDEX)

    async def _publish_archive(self, repo: str, stored: StoredAsset) -> bytes:
        """Docker archive → its config and layer blobs in the repository, and the image manifest bytes."""
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "image.tar"
            await self._archives.read_to(stored.key, archive)
            config_name, layer_names = await asyncio.to_thread(_archive_index, archive)
            extracted = Path(tmp) / "x"
            await asyncio.to_thread(_extract, archive, extracted)
            config = (extracted / config_name).read_bytes()
            await self._repo.put_blob(repo, mt.OCI_CONFIG, config)
            layers = []
            for name in layer_names:
                path = extracted / name
                digest = await asyncio.to_thread(_file_digest, path)
                await self._repo.put_blob_file(repo, mt.OCI_LAYER_GZIP, path, digest)
                layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": digest, "size": path.stat().st_size})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": layers,
            },
            separators=(",", ":"),
        ).encode()
        await self._repo.put_manifest(repo, digest_of(manifest), manifest, mt.OCI_MANIFEST)
        return manifest

    async def _sign(self, repo: str, digest: str) -> None:
        payload, signature = await self._signer.sign(f"{self._repo.identity}/{repo}", digest)
        await self._repo.put_blob(repo, mt.COSIGN_SIMPLE_SIGNING, payload)
        await self._repo.put_blob(repo, mt.OCI_CONFIG, EMPTY_CONFIG)
        manifest = signature_manifest(EMPTY_CONFIG, payload, signature)
        await self._repo.put_manifest(repo, signature_tag(digest), manifest, mt.OCI_MANIFEST)

    async def _signature_valid(self, repo: str, digest: str) -> bool:
        try:
            found = await self._repo.get_manifest(repo, signature_tag(digest))
            if found is None:
                return False
            layer = json.loads(found[0])["layers"][0]
            payload = await self._repo.get_blob(repo, layer["digest"])
            if payload is None or digest_of(payload) != layer["digest"]:
                return False
            return await self._signer.verify(payload, layer["annotations"][SIGNATURE_ANNOTATION], digest)
        except (KeyError, IndexError, ValueError, TypeError, NotFound):
            return False


async def _final(assets: AssetBuilder, request: Any) -> StoredAsset:
    result: StoredAsset | None = None
    async for event in assets.ensure(request):
        if isinstance(event, StoredAsset):
            result = event
    assert result is not None
    return result


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
