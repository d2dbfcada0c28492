"""The blocking client: each method runs the matching `AsyncClient` coroutine on a private event loop.

There is no second implementation to keep in step: every method below is one delegation line. It cannot
be used from inside a running event loop (use `AsyncClient` there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from imagefactory_client.client import DEFAULT_TIMEOUT, AsyncClient, SchematicInput
from imagefactory_client.models import AssetInfo, Downloaded, ExtensionInfo, OverlayInfo
from imagefactory_client.transfer import Options

T = TypeVar("T")


class Client:
    """`with Client(url) as client: client.versions()`."""

    def __init__(self, base_url: str | None = None, *, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> None:
        self._runner = asyncio.Runner()
        self._client = AsyncClient(base_url, timeout=timeout)
        self.base_url = self._client.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    def close(self) -> None:
        self._run(self._client.close())
        self._runner.close()

    def url(self, *segments: str) -> str:
        return self._client.url(*segments)

    def fetch(self, *segments: str) -> bytes:
        return self._run(self._client.fetch(*segments))

    def create_schematic(self, schematic: SchematicInput) -> str:
        return self._run(self._client.create_schematic(schematic))

    def get_schematic(self, schematic_id: str) -> str:
        return self._run(self._client.get_schematic(schematic_id))

    def versions(self, *, broken: bool = False) -> list[str]:
        return self._run(self._client.versions(broken=broken))

    def extensions(self, version: str) -> list[ExtensionInfo]:
        return self._run(self._client.extensions(version))

    def overlays(self, version: str) -> list[OverlayInfo]:
        return self._run(self._client.overlays(version))

    def talosctl(self, version: str) -> list[str]:
        return self._run(self._client.talosctl(version))

    def download_talosctl(self, version: str, file_name: str, dest: Path, options: Options | None = None) -> Downloaded:
        return self._run(self._client.download_talosctl(version, file_name, dest, options))

    def asset_url(self, schematic_id: str, version: str, path: str, *, filename: str | None = None) -> str:
        return self._client.asset_url(schematic_id, version, path, filename=filename)

    def asset_info(self, schematic_id: str, version: str, path: str) -> AssetInfo:
        return self._run(self._client.asset_info(schematic_id, version, path))

    def download(
        self, schematic_id: str, version: str, path: str, dest: Path, options: Options | None = None
    ) -> Downloaded:
        return self._run(self._client.download(schematic_id, version, path, dest, options))

    def pxe_script(self, schematic_id: str, version: str, target: str) -> str:
        return self._run(self._client.pxe_script(schematic_id, version, target))

    def cosign_public_key(self) -> bytes:
        return self._run(self._client.cosign_public_key())

    def secureboot_certificate(self) -> bytes:
        return self._run(self._client.secureboot_certificate())

    def ready(self) -> bool:
        return self._run(self._client.ready())
