"""The cache service as a real process, signing through the real signer process."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from imagefactory.v1 import cache_pb2, cache_pb2_grpc
from services.mesh.supervisor import Mesh
from services.shared.grpc_client import open_channel
from services.shared.oci import RegistryClient, signature_tag
from tests.e2e.conftest import http_get
from tests.support.cosign_cli import cosign_verify
from tests.support.mesh import make_mesh
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

CHUNK = 1024 * 1024
GIB = 1024 * CHUNK


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def block(index: int) -> bytes:
    """1 MiB that differs per index, cheap to regenerate on the reading side."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return seed * (CHUNK // len(seed))


async def put(stub: Any, key: str, chunks: int) -> Any:
    async def parts() -> AsyncIterator[cache_pb2.PutRequest]:
        yield cache_pb2.PutRequest(
            header=cache_pb2.PutHeader(key=key, media_type="application/octet-stream", file_name="big.raw")
        )
        for index in range(chunks):
            yield cache_pb2.PutRequest(data=block(index))

    return await stub.Put(parts())


async def test_one_gib_put_and_read_in_bounded_memory(mesh: Mesh) -> None:
    pid = mesh.processes["cache"].pid
    channel = open_channel(mesh.config, "cache")
    stub: Any = cache_pb2_grpc.CacheServiceStub(channel)
    key = "ab" * 32
    try:
        # Warm up first: the first RPCs load code and start worker threads; that is not per-byte growth.
        await put(stub, "ef" * 32, 4)
        _ = [m async for m in stub.Read(cache_pb2.ReadRequest(key="ef" * 32))]
        baseline = rss_kib(pid, "VmRSS")
        reply = await put(stub, key, GIB // CHUNK)
        expected = hashlib.sha256()
        for index in range(GIB // CHUNK):
            expected.update(block(index))
        assert reply.asset.size == GIB
        assert reply.asset.digest == "sha256:" + expected.hexdigest()

        seen = hashlib.sha256()
        size = 0
        async for message in stub.Read(cache_pb2.ReadRequest(key=key)):
            seen.update(message.data)
            size += len(message.data)
        assert size == GIB
        assert seen.hexdigest() == expected.hexdigest()
    finally:
        await channel.close(None)
    growth_mib = (rss_kib(pid, "VmHWM") - baseline) / 1024
    print(f"cache process peak RSS growth over a 1 GiB put + read: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"cache process peak RSS grew by {growth_mib:.1f} MiB"


async def test_tampering_on_disk_makes_reads_a_miss(mesh: Mesh) -> None:
    channel = open_channel(mesh.config, "cache")
    stub: Any = cache_pb2_grpc.CacheServiceStub(channel)
    key = "cd" * 32
    try:
        await put(stub, key, 2)
        first = [m async for m in stub.Read(cache_pb2.ReadRequest(key=key, offset=10, length=5))]
        assert first[0].asset.key == key and first[0].data == block(0)[10:15]
        blob = mesh.config.state_dir / "cache" / key[:2] / key / "blob"
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
        # Stat does not read the body (same size, so it still looks fine); Read hashes before the
        # first byte, refuses, and drops the asset, so afterwards even Stat is a miss.
        with pytest.raises(aio.AioRpcError) as info:
            _ = [m async for m in stub.Read(cache_pb2.ReadRequest(key=key))]
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(aio.AioRpcError) as info:
            await stub.Stat(cache_pb2.StatRequest(key=key))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await channel.close(None)


@pytest.mark.registry
async def test_registry_backend_stores_signed_assets(tmp_path: Path, registry: RegistryServer) -> None:
    """The cache process against a real registry: the signature it stores verifies with the public key
    the gateway serves, over the manifest digest the tag points at (spec §8.2, §9.4)."""
    mesh = make_mesh(
        tmp_path,
        cache={"backend": "registry", "oci": {"registry": registry.host, "repository": "if/cache", "insecure": True}},
    )
    mesh.start(timeout=60)
    channel = open_channel(mesh.config, "cache")
    stub: Any = cache_pb2_grpc.CacheServiceStub(channel)
    key = "12" * 32
    try:
        reply = await put(stub, key, 3)
        messages = [m async for m in stub.Read(cache_pb2.ReadRequest(key=key, offset=CHUNK, length=CHUNK))]
        assert b"".join(m.data for m in messages) == block(1)
        assert messages[0].asset == reply.asset
        async with RegistryClient(registry.host, insecure=True) as client:
            manifest = await client.get_manifest("if/cache", key)
            assert [layer.media_type for layer in manifest.layers()] == ["application/data"]
            signature = await client.get_manifest("if/cache", signature_tag(manifest.digest))
            (layer,) = signature.layers()
            payload = await client.get_blob("if/cache", layer.digest)
        public_key = serialization.load_pem_public_key(http_get(f"{mesh.url}/oci/cosign/signing-key.pub")[2])
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        signed = base64.b64decode((layer.annotations or {})["dev.cosignproject.cosign/signature"])
        public_key.verify(signed, payload, ec.ECDSA(hashes.SHA256()))
        assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == manifest.digest
        assert json.loads(payload)["critical"]["identity"]["docker-reference"] == f"{registry.host}/if/cache"

        # The real cosign agrees, and refuses with another key.
        key_file = tmp_path / "factory.pub"
        key_file.write_bytes(http_get(f"{mesh.url}/oci/cosign/signing-key.pub")[2])
        verified = cosign_verify(f"{registry.host}/if/cache:{key}", key_file, tmp_path)
        assert verified.returncode == 0, verified.stderr
        assert manifest.digest in verified.stdout
        other = tmp_path / "other.pub"
        other.write_bytes(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        refused = cosign_verify(f"{registry.host}/if/cache:{key}", other, tmp_path)
        assert refused.returncode != 0
    finally:
        await channel.close(None)
        mesh.stop()
