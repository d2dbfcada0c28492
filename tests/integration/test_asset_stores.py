"""One suite for every asset store backend: the embedded filesystem and a real OCI registry.

Each backend says how to tamper with what it stores; the expectations are the same: a tampered blob,
metadata or signature is never served, reads as a miss, is counted, and is gone so that it gets rebuilt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from prometheus_client import REGISTRY

from services.cache.fs_store import INCOMING, FilesystemStore
from services.cache.model import AssetMeta, LocatedBlob, PutRequest
from services.cache.registry_store import RegistryStore
from services.cache.verified_files import identity
from services.shared.errors import InvalidArgument, NotFound, OutOfRange, PayloadTooLarge
from services.shared.oci import RegistryClient, signature_tag
from tests.support.local_signer import LocalSigner
from tests.support.registry import RegistryServer

KEY = "0123456789abcdef" * 4
MAX_BYTES = 8 * 1024 * 1024


class Store(Protocol):
    async def put(self, request: PutRequest, chunks: Any) -> AssetMeta: ...
    async def stat(self, key: str) -> AssetMeta: ...
    async def read(self, key: str, offset: int = 0, length: int = 0) -> tuple[AssetMeta, AsyncIterator[bytes]]: ...
    async def locate(self, key: str) -> LocatedBlob: ...


class Backend(Protocol):
    store: Store
    repairs_corrupt_blobs: bool

    def reopen(self) -> Store: ...
    async def tamper_blob(self, key: str) -> None: ...
    async def tamper_metadata(self, key: str) -> None: ...
    async def replace_signature(self, key: str, signer: LocalSigner) -> None: ...
    async def published_keys(self) -> list[str]: ...


@dataclass
class FilesystemBackend:
    root: Path
    signer: LocalSigner
    store: FilesystemStore
    repairs_corrupt_blobs = True

    def reopen(self) -> FilesystemStore:
        store = FilesystemStore(self.root, self.signer, max_asset_bytes=MAX_BYTES)
        store.prepare()
        return store

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def tamper_blob(self, key: str) -> None:
        blob = self._dir(key) / "blob"
        data = bytearray(blob.read_bytes())
        data[0] ^= 1  # same size, one bit flipped
        blob.write_bytes(bytes(data))

    async def tamper_metadata(self, key: str) -> None:
        path = self._dir(key) / "meta.json"
        path.write_bytes(path.read_bytes().replace(b'"file_name":"', b'"file_name":"evil-'))

    async def replace_signature(self, key: str, signer: LocalSigner) -> None:
        meta = AssetMeta.from_json((self._dir(key) / "meta.json").read_bytes())
        forged = await signer.sign("local/image-factory/cache", meta.document_digest())
        (self._dir(key) / "meta.sig").write_bytes(forged.to_json())

    async def published_keys(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*/*") if p.parent.name != INCOMING)


@dataclass
class RegistryBackend:
    server: RegistryServer
    client: RegistryClient
    repo: str
    spool: Path
    signer: LocalSigner
    store: RegistryStore
    repairs_corrupt_blobs = False

    def reopen(self) -> RegistryStore:
        # A fresh spool too: a restarted replica on another machine has none.
        store = RegistryStore(
            self.client, self.repo, self.signer, self.spool.with_name(uuid.uuid4().hex), max_asset_bytes=MAX_BYTES
        )
        store.prepare()
        return store

    async def _manifest(self, key: str) -> tuple[str, dict[str, Any]]:
        manifest = await self.client.get_manifest(self.repo, key)
        return manifest.digest, manifest.json()

    async def tamper_blob(self, key: str) -> None:
        _, manifest = await self._manifest(key)
        path = self.server.blob_path(manifest["layers"][0]["digest"])
        data = bytearray(path.read_bytes())
        data[0] ^= 1
        path.write_bytes(bytes(data))
        self.store = self.reopen()  # the old spool holds a verified good copy; start cold

    async def tamper_metadata(self, key: str) -> None:
        _, manifest = await self._manifest(key)
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] = "evil.iso"
        data = json.dumps(manifest).encode()
        await self.client.put_manifest(self.repo, key, data, manifest["mediaType"])

    async def replace_signature(self, key: str, signer: LocalSigner) -> None:
        digest, _ = await self._manifest(key)
        forged = await signer.sign(self.store.reference, digest)
        sig_manifest = await self.client.get_manifest(self.repo, signature_tag(digest))
        body = sig_manifest.json()
        payload_digest = await self.client.push_blob(self.repo, forged.payload)
        body["layers"][0]["digest"] = payload_digest
        body["layers"][0]["size"] = len(forged.payload)
        body["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = forged.signature_base64
        await self.client.put_manifest(self.repo, signature_tag(digest), json.dumps(body).encode(), body["mediaType"])

    async def published_keys(self) -> list[str]:
        try:
            tags = await self.client.list_tags(self.repo)
        except NotFound:  # nothing was ever tagged in this repository
            return []
        return sorted(t for t in tags if not t.endswith(".sig"))


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> LocalSigner:
    return LocalSigner.generate(tmp_path_factory.mktemp("store-signer"))


@pytest.fixture(scope="session")
def other_signer(tmp_path_factory: pytest.TempPathFactory) -> LocalSigner:
    return LocalSigner.generate(tmp_path_factory.mktemp("store-other-signer"))


@pytest.fixture(params=["filesystem", "registry"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, signer: LocalSigner) -> Any:
    if request.param == "filesystem":
        fs_store = FilesystemStore(tmp_path / "cache", signer, max_asset_bytes=MAX_BYTES)
        fs_store.prepare()
        yield FilesystemBackend(tmp_path / "cache", signer, fs_store)
        return
    request.applymarker(pytest.mark.registry)
    server: RegistryServer = request.getfixturevalue("registry")
    async with RegistryClient(server.host, insecure=True) as client:
        repo = f"cache-{uuid.uuid4().hex[:12]}/assets"
        store = RegistryStore(client, repo, signer, tmp_path / "spool", max_asset_bytes=MAX_BYTES)
        store.prepare()
        yield RegistryBackend(server, client, repo, tmp_path / "spool", signer, store)


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def put(store: Store, data: bytes, key: str = KEY) -> AssetMeta:
    request = PutRequest(key=key, media_type="application/x-iso9660-image", file_name="a.iso")
    return await store.put(request, chunks_of(data))


async def read_all(store: Store, key: str = KEY, offset: int = 0, length: int = 0) -> bytes:
    _, chunks = await store.read(key, offset, length)
    return b"".join([c async for c in chunks])


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("image_factory_cache_verification_failures_total", {"reason": reason}) or 0.0


async def test_put_then_stat_and_read(backend: Backend) -> None:
    data = os.urandom(5000)
    stored = await put(backend.store, data)
    meta = await backend.store.stat(KEY)
    assert meta == stored
    assert (meta.size, meta.digest) == (5000, "sha256:" + hashlib.sha256(data).hexdigest())
    assert (meta.media_type, meta.file_name) == ("application/x-iso9660-image", "a.iso")
    assert await read_all(backend.store) == data


@pytest.mark.parametrize(("offset", "length"), [(0, 1), (100, 200), (4999, 0), (4000, 5000), (0, 0)])
async def test_range_reads(backend: Backend, offset: int, length: int) -> None:
    data = os.urandom(5000)
    await put(backend.store, data)
    end = len(data) if length == 0 else offset + length
    assert await read_all(backend.store, offset=offset, length=length) == data[offset:end]


async def test_locate_gives_a_verified_local_file(backend: Backend) -> None:
    data = os.urandom(100_000)
    meta = await put(backend.store, data)
    located = await backend.store.locate(KEY)
    assert located.meta == meta
    assert await asyncio.to_thread(located.path.read_bytes) == data
    assert located.identity == await asyncio.to_thread(identity, located.path)
    with pytest.raises(NotFound):
        await backend.store.locate("f" * 64)


async def test_range_outside_the_asset(backend: Backend) -> None:
    await put(backend.store, b"abc")
    for offset in (3, -1, 10):
        with pytest.raises(OutOfRange):
            await backend.store.read(KEY, offset, 0)


async def test_empty_asset(backend: Backend) -> None:
    await put(backend.store, b"")
    assert (await backend.store.stat(KEY)).size == 0
    assert await read_all(backend.store) == b""


async def test_missing_key_and_bad_keys(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.store.stat(KEY)
    for bad in ["../../etc", "ABCDEF0123456789", "short", "g" * 64]:
        with pytest.raises(InvalidArgument):
            await backend.store.stat(bad)


async def test_size_limit_and_expected_size(backend: Backend) -> None:
    with pytest.raises(PayloadTooLarge):
        await put(backend.store, b"x" * (MAX_BYTES + 1))
    with pytest.raises(InvalidArgument, match="received 3 bytes, expected 4"):
        await backend.store.put(PutRequest(key=KEY, media_type="a", file_name="b", expected_size=4), chunks_of(b"abc"))
    with pytest.raises(NotFound):
        await backend.store.stat(KEY)


async def test_interrupted_put_leaves_nothing_visible(backend: Backend) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 3000
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await backend.store.put(PutRequest(key=KEY, media_type="a", file_name="b"), broken())
    with pytest.raises(NotFound):
        await backend.store.stat(KEY)
    assert await backend.published_keys() == []


async def test_concurrent_puts_of_one_key_publish_one_readable_asset(backend: Backend) -> None:
    data = os.urandom(20000)
    await asyncio.gather(*(put(backend.store, data) for _ in range(8)))
    assert await read_all(backend.store) == data
    assert await backend.published_keys() == [KEY]


async def test_assets_survive_a_restart(backend: Backend) -> None:
    await put(backend.store, b"persistent")
    assert await read_all(backend.reopen()) == b"persistent"


async def test_tampered_blob_is_never_served_and_is_dropped(backend: Backend) -> None:
    data = os.urandom(4096)
    await put(backend.store, data)
    assert await read_all(backend.store) == data
    before = refusals("blob")
    await backend.tamper_blob(KEY)
    with pytest.raises(NotFound):
        await backend.store.read(KEY)
    assert refusals("blob") == before + 1
    with pytest.raises(NotFound):  # dropped: the next request rebuilds instead of failing again
        await backend.store.stat(KEY)
    await put(backend.store, data)
    if backend.repairs_corrupt_blobs:
        assert await read_all(backend.store) == data
    else:
        # distribution keeps its corrupt copy of that digest (content-addressed storage skips the
        # re-upload): it takes the registry operator to repair; meanwhile it is still never served.
        with pytest.raises(NotFound):
            await backend.store.read(KEY)


async def test_tampered_metadata_is_a_miss(backend: Backend) -> None:
    await put(backend.store, b"payload")
    before = refusals("signature")
    await backend.tamper_metadata(KEY)
    with pytest.raises(NotFound):
        await backend.store.stat(KEY)
    assert refusals("signature") == before + 1


async def test_signature_by_another_key_is_a_miss(backend: Backend, other_signer: LocalSigner) -> None:
    await put(backend.store, b"payload")
    await backend.replace_signature(KEY, other_signer)
    with pytest.raises(NotFound):
        await backend.store.read(KEY)


async def test_signature_over_other_content_is_a_miss(backend: Backend) -> None:
    other = "f" * 64
    await put(backend.store, b"one")
    await put(backend.store, b"two", key=other)
    await backend.tamper_metadata(KEY)  # now unsigned content under KEY
    with pytest.raises(NotFound):
        await backend.store.read(KEY)
    assert await read_all(backend.store, other) == b"two"


def test_registry_store_signs_the_reference_spec_names(tmp_path: Path, signer: LocalSigner) -> None:
    client = RegistryClient("registry.example:5000")
    store = RegistryStore(client, "image-factory/cache", signer, tmp_path, max_asset_bytes=1)
    assert store.reference == "registry.example:5000/image-factory/cache"
