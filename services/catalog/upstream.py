"""The upstream Talos release as the catalog sees it: versions, catalogs, verified references.

Every image is verified before anything of it is used (spec §7.2): tag → digest (HEAD), then the
signature of that digest, then content fetched by digest. Verification results are cached per digest;
failures are not. Catalog images are flattened once per digest into the work dir; lists are kept in
memory per version for the process lifetime (as the reference does). The version list is refreshed
after `version_recheck_seconds`, and a tag's digest after `tag_recheck_seconds` (so that a cached
asset is found without asking the registry on every request, yet a re-pushed tag is seen within that
time); a failed refresh is an error, never a stale answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from services.catalog.adapters.signature_material import fetch_signature_material
from services.catalog.catalogs import (
    DESCRIPTIONS,
    IMAGE_DIGESTS,
    OVERLAYS,
    ExtensionEntry,
    OverlayEntry,
    TalosctlFile,
    find_extension,
    find_overlay,
    parse_extensions,
    parse_overlays,
    parse_talosctl_files,
)
from services.catalog.verify import VerificationCache, Verifier
from services.catalog.versions import (
    Version,
    VersionPolicy,
    parse_requested,
    require_available,
    supports_factory_talosctl,
    supports_overlays,
)
from services.shared.config import ArtifactsConfig
from services.shared.errors import NotFound
from services.shared.oci import Platform, RegistryClient
from services.shared.oci.flatten import flatten_image
from services.shared.singleflight import SingleFlight

log = logging.getLogger(__name__)

# Catalog images and the imager are read from their amd64 platform image, as the reference does (§7.3).
CATALOG_PLATFORM = Platform("linux", "amd64")
UNIFIED_INSTALLER = Version(1, 10, 0)


@dataclass(frozen=True)
class ImageRef:
    """A verified, digest-pinned image (the index digest for multi-arch images)."""

    registry: str
    repository: str
    tag: str
    digest: str
    insecure: bool


@dataclass(frozen=True)
class ResolvedExtension:
    requested_name: str
    entry: ExtensionEntry
    image: ImageRef


@dataclass(frozen=True)
class Resolution:
    version: Version
    imager: ImageRef
    installer_base: ImageRef
    extensions: tuple[ResolvedExtension, ...]
    overlay: ImageRef | None


class Upstream:
    def __init__(self, client: RegistryClient, settings: ArtifactsConfig, verifier: Verifier, work_dir: Path) -> None:
        self._client = client
        self._settings = settings
        self._verifier = verifier
        self._verified = VerificationCache()
        self._work_dir = work_dir
        self._policy = VersionPolicy.from_config(settings.min_talos_version, settings.broken_talos_versions)
        self._versions: tuple[float, list[Version]] | None = None
        self._flight = SingleFlight()
        self._extensions: dict[Version, list[ExtensionEntry]] = {}
        self._overlays: dict[Version, list[OverlayEntry]] = {}
        self._talosctl: dict[Version, tuple[list[TalosctlFile], Path]] = {}
        self._tag_digests: dict[tuple[str, str], tuple[float, str]] = {}

    @property
    def broken(self) -> list[Version]:
        return list(self._policy.broken)

    def _repo(self, component: str) -> str:
        return self._settings.repository(component)

    def _ref(self, repo: str, tag: str, digest: str) -> ImageRef:
        return ImageRef(self._settings.registry, repo, tag, digest, self._settings.insecure)

    # --- versions ----------------------------------------------------------------------------

    async def versions(self) -> list[Version]:
        cached = self._versions
        if cached is not None and time.monotonic() - cached[0] < self._settings.version_recheck_seconds:
            return cached[1]
        return await self._flight.run("versions", self._fetch_versions)

    async def _fetch_versions(self) -> list[Version]:
        tags = await self._client.list_tags(self._repo(self._settings.components.imager))
        versions = self._policy.available(tags)
        self._versions = (time.monotonic(), versions)
        return versions

    async def require(self, requested: str) -> Version:
        """A version from a URL: 400 when malformed, 404 `version x.y.z is not available` when not offered."""
        return require_available(parse_requested(requested), await self.versions())

    # --- verification and content --------------------------------------------------------------

    async def verified_digest(self, repo: str, ref: str) -> str:
        """Resolve `ref` (a tag or digest) and verify the signature of the digest it names."""
        digest = ref if ref.startswith("sha256:") else await self._tag_digest(repo, ref)
        if self._verified.get(digest) is None:
            await self._flight.run(f"verify:{digest}", lambda: self._verify(repo, digest))
        return digest

    async def _tag_digest(self, repo: str, tag: str) -> str:
        known = self._tag_digests.get((repo, tag))
        if known is not None and time.monotonic() - known[0] < self._settings.tag_recheck_seconds:
            return known[1]
        descriptor = await self._client.head_manifest(repo, tag)
        if descriptor is None:
            raise NotFound(f"image {repo}:{tag} not found in {self._settings.registry}")
        self._tag_digests[(repo, tag)] = (time.monotonic(), descriptor.digest)
        return descriptor.digest

    async def _verify(self, repo: str, digest: str) -> None:
        material = await fetch_signature_material(self._client, repo, digest)
        reference = f"{self._settings.registry}/{repo}@{digest}"
        result = await asyncio.to_thread(self._verifier.verify, reference, digest, material)
        log.info("upstream image verified", extra={"image": reference, "method": str(result.method)})
        self._verified.put(result)

    async def export(self, repo: str, digest: str) -> Path:
        """The flattened amd64 filesystem of a verified image, extracted once per digest."""
        dest = self._work_dir / "exports" / digest.removeprefix("sha256:")
        if dest.is_dir():
            return dest

        async def work() -> Path:
            manifest = await self._client.resolve_platform(
                repo, digest, CATALOG_PLATFORM.os, CATALOG_PLATFORM.architecture
            )
            dest.parent.mkdir(parents=True, exist_ok=True)
            await flatten_image(self._client, repo, manifest, dest)
            return dest

        return await self._flight.run(f"export:{digest}", work)

    async def _catalog_files(self, component: str, version: Version, names: tuple[str, ...]) -> dict[str, bytes]:
        repo = self._repo(component)
        root = await self.export(repo, await self.verified_digest(repo, version.tag))
        return {name: (root / name).read_bytes() for name in names if (root / name).is_file()}

    # --- catalogs ------------------------------------------------------------------------------

    async def extensions(self, version: Version) -> list[ExtensionEntry]:
        if version not in self._extensions:
            files = await self._catalog_files(
                self._settings.components.extensions, version, (IMAGE_DIGESTS, DESCRIPTIONS)
            )
            self._extensions[version] = parse_extensions(
                files, registry=self._settings.registry, namespace=self._settings.namespace
            )
        return self._extensions[version]

    async def overlays(self, version: Version) -> list[OverlayEntry]:
        if not supports_overlays(version):
            return []
        if version not in self._overlays:
            files = await self._catalog_files(self._settings.components.overlays, version, (OVERLAYS,))
            self._overlays[version] = parse_overlays(
                files, registry=self._settings.registry, namespace=self._settings.namespace
            )
        return self._overlays[version]

    async def talosctl(self, version: Version) -> tuple[list[TalosctlFile], Path | None]:
        """talosctl binaries of a version and the directory holding them (none before 1.11, spec §2.7)."""
        if not supports_factory_talosctl(version):
            return [], None
        if version not in self._talosctl:
            repo = self._repo(self._settings.components.talosctl)
            try:
                digest = await self.verified_digest(repo, version.tag)
            except NotFound:
                raise NotFound(f"version {version} is not available") from None
            root = await self.export(repo, digest)
            names = sorted(p.name for p in root.iterdir() if p.is_file())
            self._talosctl[version] = (parse_talosctl_files(names), root)
        files, root = self._talosctl[version]
        return sorted(files, key=lambda f: f.name), root

    # --- build inputs --------------------------------------------------------------------------

    async def resolve(self, version: Version, extension_names: list[str], overlay_name: str) -> Resolution:
        """Every upstream input of a build, verified and digest-pinned (spec §7.2, §8.1)."""
        imager_repo = self._repo(self._settings.components.imager)
        base_component = (
            self._settings.components.installer_base
            if version >= UNIFIED_INSTALLER
            else self._settings.components.installer
        )
        base_repo = self._repo(base_component)
        imager_digest, base_digest = await asyncio.gather(
            self.verified_digest(imager_repo, version.tag), self.verified_digest(base_repo, version.tag)
        )
        extensions: list[ResolvedExtension] = []
        if extension_names:
            catalog = await self.extensions(version)
            for requested in extension_names:
                entry = find_extension(catalog, requested, version)
                repo = self._repo(entry.name)
                digest = await self.verified_digest(repo, entry.digest)
                extensions.append(ResolvedExtension(requested, entry, self._ref(repo, entry.tag, digest)))
        overlay = None
        if overlay_name:
            found = find_overlay(await self.overlays(version), overlay_name, version)
            repo = self._repo(found.image)
            overlay = self._ref(repo, "", await self.verified_digest(repo, found.digest))
        return Resolution(
            version=version,
            imager=self._ref(imager_repo, version.tag, imager_digest),
            installer_base=self._ref(base_repo, version.tag, base_digest),
            extensions=tuple(extensions),
            overlay=overlay,
        )
