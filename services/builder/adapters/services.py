"""The builder's view of the other services, over gRPC: schematics, the catalog, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from imagefactory.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    schematic_pb2,
    schematic_pb2_grpc,
    signer_pb2,
    signer_pb2_grpc,
)
from services.builder.adapters.images import PinnedImage
from services.builder.getorbuild import StoredAsset
from services.catalog.catalogs import ExtensionEntry, OverlayEntry
from services.schematic.model import Schematic
from services.schematic.parsing import decode_schematic
from services.shared.errors import NotFound
from services.shared.streams import read_chunks

ARCHES = {"amd64": common_pb2.ARCH_AMD64, "arm64": common_pb2.ARCH_ARM64}


@dataclass(frozen=True)
class FetchedSchematic:
    id: str
    canonical_yaml: str
    schematic: Schematic


class SchematicsClient:
    def __init__(self, stub: schematic_pb2_grpc.SchematicServiceAsyncStub) -> None:
        self._stub = stub

    async def get(self, schematic_id: str) -> FetchedSchematic:
        reply = await self._stub.GetSchematic(schematic_pb2.GetSchematicRequest(id=schematic_id))
        # The canonical YAML is the schematic; decoding it gives the exact model its ID was made from.
        return FetchedSchematic(reply.id, reply.canonical_yaml, decode_schematic(reply.canonical_yaml.encode()))


@dataclass(frozen=True)
class BuildInputs:
    """Digest-pinned upstream inputs of one build (from CatalogService.Resolve)."""

    imager: PinnedImage
    installer_base: PinnedImage
    extensions: tuple[tuple[str, PinnedImage], ...]  # (catalog name, image), schematic order
    overlay: PinnedImage | None


def _pinned(ref: common_pb2.ImageRef) -> PinnedImage:
    return PinnedImage(ref.registry, ref.repository, ref.digest, ref.insecure)


class CatalogClient:
    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceAsyncStub) -> None:
        self._stub = stub

    async def extensions(self, version: str) -> list[ExtensionEntry]:
        reply = await self._stub.ListExtensions(catalog_pb2.ListExtensionsRequest(version=version))
        return [ExtensionEntry(e.name, e.ref, e.digest, e.author, e.description) for e in reply.extensions]

    async def latest_stable(self) -> str:
        reply = await self._stub.ListVersions(catalog_pb2.ListVersionsRequest())
        if not reply.latest_stable:
            raise NotFound("no stable Talos version is available")
        return str(reply.latest_stable)

    async def overlays(self, version: str) -> list[OverlayEntry]:
        reply = await self._stub.ListOverlays(catalog_pb2.ListOverlaysRequest(version=version))
        return [OverlayEntry(o.name, o.image, o.ref, o.digest) for o in reply.overlays]

    async def resolve(self, version: str, arch: str, extensions: list[str], overlay: str) -> BuildInputs:
        reply = await self._stub.Resolve(
            catalog_pb2.ResolveRequest(version=version, arch=ARCHES[arch], extensions=extensions, overlay_name=overlay)
        )
        return BuildInputs(
            imager=_pinned(reply.imager),
            installer_base=_pinned(reply.installer_base),
            extensions=tuple((e.name, _pinned(e.image)) for e in reply.extensions),
            overlay=_pinned(reply.overlay) if reply.HasField("overlay") else None,
        )


class SignerClient:
    """Cosign signatures through SignerService (the builder never holds a key)."""

    def __init__(self, stub: signer_pb2_grpc.SignerServiceAsyncStub) -> None:
        self._stub = stub

    async def sign(self, reference: str, digest: str) -> tuple[bytes, str]:
        reply = await self._stub.SignCosign(
            signer_pb2.SignCosignRequest(docker_reference=reference, manifest_digest=digest)
        )
        return reply.payload, reply.signature_base64

    async def public_keys(self) -> tuple[str, str]:
        """(cosign public key PEM, Secure Boot certificate PEM)."""
        key = await self._stub.GetPublicKey(signer_pb2.GetPublicKeyRequest())
        cert = await self._stub.GetSecureBootCertificate(signer_pb2.GetSecureBootCertificateRequest())
        return key.public_key_pem, cert.certificate_pem

    async def verify(self, payload: bytes, signature_b64: str, digest: str) -> bool:
        reply = await self._stub.VerifyCosign(
            signer_pb2.VerifyCosignRequest(payload=payload, signature_base64=signature_b64, expected_digest=digest)
        )
        return bool(reply.valid)


class CacheClient:
    """The AssetCache protocol over CacheService."""

    def __init__(self, stub: cache_pb2_grpc.CacheServiceAsyncStub) -> None:
        self._stub = stub

    @staticmethod
    def _stored(asset: common_pb2.AssetRef) -> StoredAsset:
        return StoredAsset(asset.key, asset.size, asset.digest, asset.media_type, asset.file_name, asset.created_unix)

    async def stat(self, key: str) -> StoredAsset | None:
        try:
            reply = await self._stub.Stat(cache_pb2.StatRequest(key=key))
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return self._stored(reply.asset)

    async def get_bytes(self, key: str) -> tuple[bytes, str] | None:
        """A small entry whole (tag records, manifests); None on a miss."""
        chunks: list[bytes] = []
        media_type = ""
        try:
            async for message in self._stub.Read(cache_pb2.ReadRequest(key=key)):
                if message.HasField("asset"):
                    media_type = message.asset.media_type
                chunks.append(message.data)
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return b"".join(chunks), media_type

    async def read_to(self, key: str, path: Path) -> None:
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for message in self._stub.Read(cache_pb2.ReadRequest(key=key)):
                await asyncio.to_thread(handle.write, message.data)
        finally:
            await asyncio.to_thread(handle.close)

    async def put_bytes(self, key: str, media_type: str, name: str, data: bytes) -> None:
        async def parts() -> AsyncIterator[cache_pb2.PutRequest]:
            yield cache_pb2.PutRequest(
                header=cache_pb2.PutHeader(key=key, media_type=media_type, file_name=name, size=len(data))
            )
            if data:
                yield cache_pb2.PutRequest(data=data)

        await self._stub.Put(parts())

    async def put_file(self, key: str, media_type: str, name: str, path: Path) -> None:
        await self.put(key, media_type, name, path)

    async def put(self, key: str, media_type: str, file_name: str, path: Path) -> StoredAsset:
        size = (await asyncio.to_thread(path.stat)).st_size

        async def parts() -> AsyncIterator[cache_pb2.PutRequest]:
            header = cache_pb2.PutHeader(key=key, media_type=media_type, file_name=file_name, size=size)
            yield cache_pb2.PutRequest(header=header)
            async for chunk in read_chunks(path):
                yield cache_pb2.PutRequest(data=chunk)

        reply = await self._stub.Put(parts())
        return self._stored(reply.asset)
