"""Both schematic stores pass one suite; the registry layout is exactly the reference's (spec §6.5)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.schematic.storage import SchematicStorage
from services.schematic.storage.filesystem import FilesystemStorage
from services.schematic.storage.registry import RegistryStorage
from services.shared.errors import NotFound
from services.shared.oci import RegistryClient
from tests.support.registry import RegistryServer

VANILLA = b"customization: {}\n"
VANILLA_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"


@pytest.fixture(params=["filesystem", "registry"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "filesystem":
        fs = FilesystemStorage(tmp_path / "schematics")
        fs.prepare()
        yield fs
        return
    request.applymarker(pytest.mark.registry)
    server: RegistryServer = request.getfixturevalue("registry")
    async with RegistryClient(server.host, insecure=True) as client:
        yield RegistryStorage(client, f"schematics-{uuid.uuid4().hex[:8]}/schematics")


async def test_put_head_get(storage: SchematicStorage) -> None:
    assert hashlib.sha256(VANILLA).hexdigest() == VANILLA_ID
    assert not await storage.head(VANILLA_ID)
    await storage.put(VANILLA_ID, VANILLA)
    assert await storage.head(VANILLA_ID)
    assert await storage.get(VANILLA_ID) == VANILLA
    await storage.put(VANILLA_ID, VANILLA)  # idempotent
    assert await storage.get(VANILLA_ID) == VANILLA


@pytest.mark.parametrize("bad", ["a" * 64, "aaaaaaaaaaaa", "../etc/passwd", "", "A" * 64])
async def test_missing_and_malformed_ids(storage: SchematicStorage, bad: str) -> None:
    assert not await storage.head(bad)
    with pytest.raises(NotFound) as info:
        await storage.get(bad)
    assert info.value.message == f'schematic ID "{bad}" not found'


async def test_filesystem_store_survives_restart_and_refuses_corruption(tmp_path: Path) -> None:
    first = FilesystemStorage(tmp_path / "s")
    first.prepare()
    await first.put(VANILLA_ID, VANILLA)
    again = FilesystemStorage(tmp_path / "s")
    again.prepare()
    assert await again.get(VANILLA_ID) == VANILLA
    (tmp_path / "s" / VANILLA_ID[:2] / f"{VANILLA_ID}.yaml").write_bytes(b"customization: {evil}\n")
    with pytest.raises(NotFound):
        await again.get(VANILLA_ID)


@pytest.mark.registry
async def test_registry_layout_matches_the_reference(registry: RegistryServer) -> None:
    async with RegistryClient(registry.host, insecure=True) as client:
        repo = "siderolabs/image-factory/schematics"
        await RegistryStorage(client, repo).put(VANILLA_ID, VANILLA)
        manifest = await client.get_manifest(repo, VANILLA_ID)
        body = manifest.json()
        assert manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        assert body["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
        assert body["layers"] == [
            {
                "mediaType": "application/vnd.sidero.dev-image.schematic",
                "size": len(VANILLA),
                "digest": f"sha256:{VANILLA_ID}",
            }
        ]
        config = json.loads(await client.get_blob(repo, body["config"]["digest"]))
        assert config["rootfs"]["diff_ids"] == [f"sha256:{VANILLA_ID}"]
        assert await client.get_blob(repo, f"sha256:{VANILLA_ID}") == VANILLA
