"""Publish the demo upstream: every image of every version, signed, under `siderolabs/`.

Per Talos version (model.VERSIONS): `imager`, `installer-base` (≥ 1.10) or `installer`, the five demo
extensions, the `extensions` catalog, the `overlays` catalog (≥ 1.7) and `talosctl-all`; once: the
overlay images of `model.OVERLAYS` (`sbc-demo`, `sbc-raspberrypi`). Versions are built and pushed
concurrently; gzip runs in threads, so both cores work on the first (cold-cache) publish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from services.shared.oci import RegistryClient
from services.signer.keys import CosignKey

from . import images, kernel
from .cache import CacheDir
from .extensions import SPECS, extension_entries
from .initramfs import boot_assets
from .layers import Entry, make_layer
from .model import (
    ARCHES,
    NAMESPACE,
    OVERLAYS,
    VERSIONS,
    DemoOverlay,
    DemoRelease,
    PublishedExtension,
    PublishedImage,
    TalosVersion,
    source_date_epoch,
)
from .overlay import overlay_entries
from .publisher import PlatformImage, Publisher

logger = logging.getLogger(__name__)
_Published = PublishedImage | PublishedExtension


class _Run:
    """Shared state of one publish: where to push, what to cache, which mtime to stamp."""

    def __init__(self, client: RegistryClient, key: CosignKey, cache: CacheDir, boot: kernel.BootFiles) -> None:
        self.epoch = source_date_epoch()
        self.publisher = Publisher(client, key, self.epoch)
        self.registry = client.registry
        self.cache = cache
        self.boot = boot

    async def push(
        self,
        name: str,
        tag: str,
        entries: Sequence[Entry],
        configs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PublishedImage:
        """One layer shared by the amd64 and arm64 manifests of `siderolabs/<name>:<tag>`."""
        layer = await make_layer(self.cache, entries, self.epoch)
        platforms = [PlatformImage(arch, [layer], (configs or {}).get(arch, {})) for arch in ARCHES]
        image = await self.publisher.push_index(f"{NAMESPACE}/{name}", tag, platforms)
        logger.info("published %s/%s:%s@%s", self.registry, image.repository, tag, image.digest)
        return image

    async def version(self, version: TalosVersion, overlays: Sequence[tuple[DemoOverlay, str]]) -> list[_Published]:
        tag = version.tag
        assets = await boot_assets(self.cache, version, self.boot, self.epoch)
        imager_config = {arch: images.imager_config(version) for arch in ARCHES}
        published: list[_Published] = [await self.push("imager", tag, images.imager_entries(assets), imager_config)]
        installer_configs = {arch: images.installer_config(version, arch) for arch in ARCHES}
        published.append(
            await self.push(version.installer_repository, tag, images.installer_entries(version), installer_configs)
        )
        extensions = []
        for spec in SPECS:
            ext_tag = spec.version(version)
            image = await self.push(spec.name, ext_tag, extension_entries(spec, version, self.boot.kernel))
            line = f"{self.registry}/{image.repository}:{ext_tag}@{image.digest}"
            extensions.append(
                PublishedExtension(spec.name, ext_tag, image.digest, tag, spec.compatibility, spec.description, line)
            )
            published.append(image)
        published.extend(extensions)
        published.append(await self.push("extensions", tag, images.extensions_catalog_entries(extensions)))
        if version.has_overlays:
            entries = images.overlays_catalog_entries(self.registry, NAMESPACE, overlays)
            published.append(await self.push("overlays", tag, entries))
        published.append(await self.push("talosctl-all", tag, images.talosctl_entries(version)))
        return published


async def publish(client: RegistryClient, key: CosignKey, cache_dir: Path) -> DemoRelease:
    """Build (or reuse from `cache_dir`) and push the whole demo release; see the module docstring."""
    cache = CacheDir(cache_dir)
    boot = await kernel.prepare(cache)
    run = _Run(client, key, cache, boot)
    overlay_images = await asyncio.gather(*(run.push(o.image, o.tag, overlay_entries(o)) for o in OVERLAYS))
    catalog = [(o, image.digest) for o, image in zip(OVERLAYS, overlay_images, strict=True)]
    per_version = await asyncio.gather(*(run.version(TalosVersion(v), catalog) for v in VERSIONS))
    published = list(overlay_images)
    extensions: dict[str, tuple[PublishedExtension, ...]] = {}
    for tag, items in zip(VERSIONS, per_version, strict=True):
        published.extend(i for i in items if isinstance(i, PublishedImage))
        extensions[tag] = tuple(i for i in items if isinstance(i, PublishedExtension))
    return DemoRelease(
        registry=client.registry,
        namespace=NAMESPACE,
        versions=VERSIONS,
        kernel_version=boot.kernel.kver,
        public_key_pem=key.public_key_pem(),
        images=tuple(published),
        extensions=extensions,
    )
