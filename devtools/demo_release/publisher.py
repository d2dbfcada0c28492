"""Push multi-arch images and their cosign signatures with the project's `RegistryClient`.

Every image is an OCI index of OCI image manifests with gzip layers. The index digest is what the
factory resolves and verifies (factory spec §7.2 step 2), so that is what gets signed: a legacy
cosign `<repo>:sha256-<hex>.sig` manifest whose one layer is the simple-signing payload for
`<registry>/<repo>` (factory spec §9.4). ECDSA signatures are randomised, so signature manifests
differ between publishes; image digests do not.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.shared.oci import RegistryClient, digest_of, signature_tag
from services.shared.oci import media_types as mt
from services.shared.oci.cosign import signature_manifest
from services.signer.cosign import sign_cosign
from services.signer.keys import CosignKey

from .layers import Layer
from .model import PublishedImage, rfc3339

_CREATED_BY = "devtools.demo_release"


def canonical_json(obj: Any) -> bytes:
    """Compact JSON in insertion order: the same object always gives the same digest."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class PlatformImage:
    """One entry of an index: an arch, its layers and the container `config` section."""

    arch: str
    layers: Sequence[Layer]
    container_config: Mapping[str, Any] = field(default_factory=dict)


class Publisher:
    def __init__(self, client: RegistryClient, key: CosignKey, epoch: int) -> None:
        self.client = client
        self.key = key
        self.created = rfc3339(epoch)
        # One push at a time per repository: distribution 2.8 can answer DIGEST_INVALID when two
        # uploads of the same blob race (the overlays catalog is identical for every version).
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def reference(self, repo: str) -> str:
        """The docker-reference cosign signs: `<registry>/<repository>`, no tag."""
        return f"{self.client.registry}/{repo}"

    async def push_index(self, repo: str, tag: str, images: Sequence[PlatformImage]) -> PublishedImage:
        async with self._locks[repo]:
            return await self._push_index(repo, tag, images)

    async def _push_index(self, repo: str, tag: str, images: Sequence[PlatformImage]) -> PublishedImage:
        platforms: dict[str, str] = {}
        children = []
        for image in images:
            manifest = await self._push_image(repo, image)
            platforms[image.arch] = digest_of(manifest)
            children.append(
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": digest_of(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": image.arch, "os": "linux"},
                }
            )
        index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children})
        digest = await self.client.put_manifest(repo, digest_of(index), index, mt.OCI_INDEX)
        await self.client.put_manifest(repo, tag, index, mt.OCI_INDEX)
        await self.sign(repo, digest)
        return PublishedImage(repo, tag, digest, platforms)

    async def _push_image(self, repo: str, image: PlatformImage) -> bytes:
        for layer in image.layers:
            await self.client.push_blob(repo, layer.read(), layer.digest)
        config = canonical_json(
            {
                "architecture": image.arch,
                "config": dict(image.container_config),
                "created": self.created,
                "history": [{"created": self.created, "created_by": _CREATED_BY} for _ in image.layers],
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in image.layers]},
            }
        )
        await self.client.push_blob(repo, config)
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [
                    {"mediaType": mt.OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}
                    for layer in image.layers
                ],
            }
        )
        await self.client.put_manifest(repo, digest_of(manifest), manifest, mt.OCI_MANIFEST)
        return manifest

    async def sign(self, repo: str, digest: str) -> None:
        """Write (or replace) the legacy cosign signature tag of `repo@digest` (factory spec §9.4)."""
        payload, signature = sign_cosign(self.key, self.reference(repo), digest)
        config = canonical_json(
            {
                "architecture": "",
                "config": {},
                "created": self.created,
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [digest_of(payload)]},
            }
        )
        await self.client.push_blob(repo, config)
        await self.client.push_blob(repo, payload)
        manifest = signature_manifest(config, payload, signature)
        await self.client.put_manifest(repo, signature_tag(digest), manifest, mt.OCI_MANIFEST)
