"""Schematics in an OCI registry, exactly as the Go factory stores them (spec §6.5).

Tag = ID; a Docker schema-2 image whose only layer is the canonical YAML (media type
`application/vnd.sidero.dev-image.schematic`), so the layer digest is `sha256:<ID>`. The manifest exists
only to keep the blob from being garbage-collected; reads go straight to the blob.
"""

from __future__ import annotations

import json

from services.schematic.storage import matches_id, not_found, valid_id
from services.shared.errors import NotFound
from services.shared.oci import AccessDenied, RegistryClient, digest_of
from services.shared.oci import media_types as mt


def _config(schematic_id: str) -> bytes:
    # go-containerregistry's empty image + one appended layer; only the diff_id matters to anyone.
    return json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{schematic_id}"]},
        },
        separators=(",", ":"),
    ).encode()


class RegistryStorage:
    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self._repo = repository

    async def head(self, schematic_id: str) -> bool:
        if not valid_id(schematic_id):
            return False
        try:
            return await self._client.head_blob(self._repo, f"sha256:{schematic_id}") is not None
        except AccessDenied:
            return False

    async def get(self, schematic_id: str) -> bytes:
        if not valid_id(schematic_id):
            raise not_found(schematic_id)
        try:
            data = await self._client.get_blob(self._repo, f"sha256:{schematic_id}")
        except (NotFound, AccessDenied):
            raise not_found(schematic_id) from None
        if not matches_id(schematic_id, data):  # the client checks digests too; belt and braces
            raise not_found(schematic_id)
        return data

    async def put(self, schematic_id: str, data: bytes) -> None:
        layer = await self._client.push_blob(self._repo, data)
        config = _config(schematic_id)
        await self._client.push_blob(self._repo, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST,
                "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config), "digest": digest_of(config)},
                "layers": [{"mediaType": mt.SIDERO_SCHEMATIC, "size": len(data), "digest": layer}],
            },
            separators=(",", ":"),
        ).encode()
        await self._client.put_manifest(self._repo, schematic_id, manifest, mt.DOCKER_MANIFEST)
