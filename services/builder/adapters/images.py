"""Upstream images the builder reads, pulled by verified digest and flattened once per (digest, arch).

The catalog hands out digest-pinned references whose signatures it verified; this side only fetches by
digest, and the OCI client checks every byte against its digest. Flattened trees are kept under the
builder's state dir, so repeated builds do not download again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.shared.oci import RegistryClient
from services.shared.oci.flatten import flatten_image
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

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
