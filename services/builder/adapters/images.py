"""Upstream images the builder reads, pulled by verified digest and flattened once per (digest, arch).

The catalog hands out digest-pinned references whose signatures it verified; this side only fetches by
digest, and the OCI client checks every byte against its digest. Flattened trees are kept under the
builder's state dir, so repeated builds do not download again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.shared.oci import RegistryClient
from services.shared.oci.flatten import flatten_image
from services.shared.oci.media_types import OCI_INDEX
from services.shared.singleflight import SingleFlight


@dataclass(frozen=True)
class PinnedImage:
    registry: str
    repository: str
    digest: str
    insecure: bool = False


class ImageStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._clients: dict[tuple[str, bool], RegistryClient] = {}
        self._flight = SingleFlight()

    def _client(self, image: PinnedImage) -> RegistryClient:
        key = (image.registry, image.insecure)
        if key not in self._clients:
            self._clients[key] = RegistryClient(image.registry, insecure=image.insecure)
        return self._clients[key]

    async def rootfs(self, image: PinnedImage, arch: str) -> Path:
        """The flattened filesystem of the `linux/<arch>` image of `image` (an index or a manifest)."""
        dest = self._root / f"{image.digest.removeprefix('sha256:')}-{arch}"
        if dest.is_dir():
            return dest

        async def pull() -> Path:
            client = self._client(image)
            manifest = await client.resolve_platform(image.repository, image.digest, "linux", arch)
            dest.parent.mkdir(parents=True, exist_ok=True)
            await flatten_image(client, image.repository, manifest, dest)
            return dest

        return await self._flight.run(f"{image.digest}/{arch}", pull)

    async def layout(self, image: PinnedImage, arch: str) -> Path:
        """The `linux/<arch>` image of `image` as an OCI image layout (blobs verified by digest).

        Installer images are built on top of the base installer's layers as they are (imager spec §9),
        so these are kept as blobs rather than flattened.
        """
        dest = self._root / f"{image.digest.removeprefix('sha256:')}-{arch}.layout"
        if dest.is_dir():
            return dest

        async def pull() -> Path:
            client = self._client(image)
            manifest = await client.resolve_platform(image.repository, image.digest, "linux", arch)
            staging = dest.with_name(dest.name + ".partial")
            await asyncio.to_thread(shutil.rmtree, staging, True)
            blobs = staging / "blobs" / "sha256"
            await asyncio.to_thread(blobs.mkdir, parents=True)
            for descriptor in [manifest.config(), *manifest.layers()]:
                await self._download(client, image.repository, descriptor.digest, blobs)
            (blobs / manifest.digest.removeprefix("sha256:")).write_bytes(manifest.data)
            (staging / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
            entry = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": len(manifest.data)}
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
            (staging / "index.json").write_text(json.dumps(index))
            await asyncio.to_thread(staging.rename, dest)
            return dest

        return await self._flight.run(f"layout:{image.digest}/{arch}", pull)

    @staticmethod
    async def _download(client: RegistryClient, repo: str, digest: str, blobs: Path) -> None:
        target = blobs / digest.removeprefix("sha256:")
        handle = await asyncio.to_thread(target.open, "wb")
        try:
            async with client.open_blob(repo, digest) as reader:  # verified against the digest
                async for chunk in reader:
                    await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
