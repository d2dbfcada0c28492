"""`ImageRepository` on a real OCI registry: installer images pushed to `<registry>/<namespace>/<repo>`.

The registry then serves them to clients, redirected or proxied by the gateway (spec §9.5). A missing
or forbidden manifest or blob reads as absent (spec §9.2 step 5: 404 and 403 mean "build").
"""

from __future__ import annotations

from pathlib import Path

from services.shared.errors import NotFound
from services.shared.oci import AccessDenied, RegistryClient
from services.shared.streams import read_chunks


class RegistryImageRepository:
    def __init__(self, client: RegistryClient, registry: str, namespace: str) -> None:
        self._client = client
        self._namespace = namespace.strip("/")
        self.identity = f"{registry}/{self._namespace}" if self._namespace else registry

    def _full(self, repo: str) -> str:
        return f"{self._namespace}/{repo}" if self._namespace else repo

    async def put_blob(self, repo: str, media_type: str, data: bytes) -> None:
        await self._client.push_blob(self._full(repo), data)

    async def put_blob_file(self, repo: str, media_type: str, path: Path, digest: str) -> None:
        await self._client.push_blob(self._full(repo), read_chunks(path), digest)

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> None:
        await self._client.put_manifest(self._full(repo), reference, data, media_type)

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str] | None:
        try:
            manifest = await self._client.get_manifest(self._full(repo), reference)
        except (NotFound, AccessDenied):
            return None
        return manifest.data, manifest.media_type

    async def get_blob(self, repo: str, digest: str) -> bytes | None:
        try:
            return await self._client.get_blob(self._full(repo), digest)
        except (NotFound, AccessDenied):
            return None
