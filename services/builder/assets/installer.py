"""Installer images from local inputs (imager §9, §10, §1.2, §6.6; factory §9.2-§9.3, §15).

One image per arch, the way Talos' `outInstaller` assembles it:

1. the base installer's layers, byte for byte (same digests, so registries dedupe them) — except that a base
   with exactly two layers keeps only the first: that is a previously built installer (installer-base +
   artifacts), whose artifacts get replaced rather than stacked (§9 step 3, the "two-layer rule");
2. the artifacts layer: `usr/install/<arch>/systemd-boot.efi` + the UKI `vmlinuz.efi` for Talos ≥1.10
   (`UseSDBootForUEFI`) or Secure Boot — the UKI is `vmlinuz.efi.signed` for Secure Boot below 1.10 — else
   `vmlinuz` + `initramfs.xz`; regular files only, no directory entries (factory §15 lists the members);
3. with an overlay, the overlay layer: `overlay/artifacts/**`, `overlay/installers/default`,
   `overlay/extra-options` (§9 step 5, §10).

The config keeps the base's container `config` (Entrypoint, Env, Labels, …) with `architecture=<arch>`,
`os=linux`, `created=SOURCE_DATE_EPOCH` (upstream uses the build time, §13: not structural). Everything is
written into an OCI image layout, so the caller can push the blobs, serve them or pack `installer-<arch>.tar`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from services.builder.enums import Arch
from services.builder.steps import docker_archive as archive
from services.builder.steps.oci_image import (
    REF_NAME,
    Blob,
    OciLayout,
    TarEntry,
    image_config,
    image_manifest,
    resolve_image,
    rfc3339,
    write_layer,
)
from services.shared.errors import VerificationFailed
from services.shared.oci import Descriptor, Manifest, Platform, index_bytes, is_digest
from services.shared.oci import media_types as mt

logger = logging.getLogger(__name__)

# Upstream writes artifact headers with mode 0 (imager §14.13); 0644 keeps them readable after a rootless
# unpack and changes nothing for the root installer.
ARTIFACT_MODE: Final = 0o644
# Base layers are copied as they are; Docker's gzip type is the same bytes under the OCI name.
_BASE_LAYER_TYPES: Final = {
    mt.OCI_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.OCI_LAYER: mt.OCI_LAYER,
    mt.OCI_LAYER_ZSTD: mt.OCI_LAYER_ZSTD,
}


@dataclass(frozen=True)
class BaseImage:
    """A base installer given as files: its config JSON and its layer blobs in manifest order."""

    config: Path
    layers: tuple[Blob, ...]


@dataclass(frozen=True)
class OverlaySpec:
    """The target-arch overlay image, flattened (imager §1.5): `artifacts/`, `installers/<name>`.

    `extra_options` is the YAML of the schematic's overlay options; empty means none, written as `{}`
    (what Go's `yaml.Marshal` gives for a nil map; the installer decodes the file strictly).
    """

    tree: Path
    name: str
    extra_options: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ValueError(f"invalid overlay installer name {self.name!r}")


@dataclass(frozen=True)
class InstallerSpec:
    """Everything one installer image is made of, as local files and decided booleans.

    `base` is an OCI image layout directory (an index is resolved to `linux/<arch>`; `base_ref_name`
    picks among several tagged images) or a `BaseImage`. `use_sd_boot_for_uefi` is
    `quirks.use_sd_boot_for_uefi(version)` (≥1.10). `image_ref` is `input.baseInstaller.imageRef`: the
    docker archive's `RepoTags` (none when it is digest-pinned, like go-containerregistry).
    """

    arch: Arch
    base: Path | BaseImage
    image_ref: str
    source_date_epoch: int
    use_sd_boot_for_uefi: bool
    secureboot: bool = False
    uki: Path | None = None
    sd_boot: Path | None = None
    kernel: Path | None = None
    initramfs: Path | None = None
    overlay: OverlaySpec | None = None
    base_ref_name: str | None = None
    layout_ref_name: str = "latest"

    def __post_init__(self) -> None:
        if self.source_date_epoch < 0:
            raise ValueError("source_date_epoch must not be negative")
        if self.uki_artifacts and (self.uki is None or self.sd_boot is None):
            raise ValueError("a UKI installer (≥1.10 or Secure Boot) needs uki and sd_boot")
        if not self.uki_artifacts and (self.kernel is None or self.initramfs is None):
            raise ValueError("a pre-1.10 installer without Secure Boot needs kernel and initramfs")

    @property
    def uki_artifacts(self) -> bool:
        return self.use_sd_boot_for_uefi or self.secureboot

    @property
    def platform(self) -> Platform:
        return Platform("linux", self.arch.value)


@dataclass(frozen=True)
class InstallerImage:
    """A built image inside the OCI layout `layout`; every blob is under `layout/blobs/sha256/`."""

    arch: Arch
    layout: Path
    manifest: Manifest
    config: Blob
    layers: tuple[Blob, ...]
    repo_tags: tuple[str, ...] | None
    source_date_epoch: int

    @property
    def descriptor(self) -> Descriptor:
        """The manifest's descriptor for an index (`platform: {architecture, os}`, factory §9.2 step 7c)."""
        return self.manifest.descriptor(Platform("linux", self.arch.value))

    @property
    def manifest_path(self) -> Path:
        return OciLayout(self.layout).blob_path(self.manifest.digest)

    def blobs(self) -> tuple[Blob, ...]:
        """Config and layers: what a push uploads before the manifest."""
        return (self.config, *self.layers)


def artifact_entries(spec: InstallerSpec) -> list[TarEntry]:
    """The artifacts layer members (imager §9 step 4 table, §6.6)."""
    base = f"usr/install/{spec.arch.value}"
    if spec.uki_artifacts:
        assert spec.uki is not None and spec.sd_boot is not None
        uki_name = "vmlinuz.efi.signed" if spec.secureboot and not spec.use_sd_boot_for_uefi else "vmlinuz.efi"
        return [
            TarEntry.file(f"{base}/systemd-boot.efi", spec.sd_boot, ARTIFACT_MODE),
            TarEntry.file(f"{base}/{uki_name}", spec.uki, ARTIFACT_MODE),
        ]
    assert spec.kernel is not None and spec.initramfs is not None
    return [
        TarEntry.file(f"{base}/vmlinuz", spec.kernel, ARTIFACT_MODE),
        TarEntry.file(f"{base}/initramfs.xz", spec.initramfs, ARTIFACT_MODE),
    ]


def _walk(root: Path, prefix: str) -> Iterator[TarEntry]:
    """`filemap.Walk`: directories and files below `root` with their permission bits (root itself left out).

    Symlinks stay symlinks: the tree comes from a pulled image, and following its links could read the host.
    """
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = f"{prefix}/{entry.name}"
        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode) & 0o777
        if entry.is_symlink():
            yield TarEntry.symlink(path, str(Path(entry.path).readlink()))
        elif entry.is_dir():
            yield TarEntry.directory(path, mode)
            yield from _walk(Path(entry.path), path)
        elif entry.is_file():
            yield TarEntry.file(path, Path(entry.path), mode)


def overlay_entries(overlay: OverlaySpec) -> list[TarEntry]:
    """The overlay layer members (imager §9 step 5, §10)."""
    root = overlay.tree.resolve()
    artifacts = root / "artifacts"
    installer = (root / "installers" / overlay.name).resolve()
    if not artifacts.is_dir():
        raise VerificationFailed(f"overlay image has no artifacts/ directory ({overlay.tree})")
    if not installer.is_file() or not installer.is_relative_to(root):
        raise VerificationFailed(f"overlay image has no installer installers/{overlay.name}")
    options = overlay.extra_options.encode() or b"{}\n"
    return [
        *_walk(artifacts, "overlay/artifacts"),
        TarEntry.file("overlay/installers/default", installer, stat.S_IMODE(installer.stat().st_mode) & 0o777),
        TarEntry.inline("overlay/extra-options", options, 0o644),
    ]


def kept_base_layers(layers: Sequence[Blob]) -> tuple[Blob, ...]:
    """The two-layer rule (imager §9 step 3, factory §9.3)."""
    return tuple(layers[:1]) if len(layers) == 2 else tuple(layers)


def base_history(history: Any, kept: int, created: str) -> list[dict[str, Any]] | None:
    """The base's history entries up to its `kept` layers, or None when they do not map onto its layers.

    Entries without `created` get ours (`umoci stat` dereferences it unconditionally).
    """
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        return None
    out: list[dict[str, Any]] = []
    seen = 0
    for entry in history:
        if not entry.get("empty_layer"):
            if seen == kept:
                break
            seen += 1
        out.append({"created": created, **entry})
    return out if seen == kept else None


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and is_digest(value)


def _load_base(spec: InstallerSpec) -> tuple[dict[str, Any], list[Blob]]:
    """The base config JSON and its layers with their diff_ids attached. Blocking."""
    if isinstance(spec.base, BaseImage):
        config_bytes, layers = spec.base.config.read_bytes(), list(spec.base.layers)
    else:
        layout = OciLayout(spec.base)
        manifest = resolve_image(layout, spec.platform, spec.base_ref_name)
        config_bytes = layout.read_blob(manifest.config())
        layers = [Blob(d, layout.blob_path(d.digest)) for d in manifest.layers()]
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise VerificationFailed(f"base installer config is not JSON: {exc}") from exc
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers) or not all(map(_is_digest, diff_ids)):
        raise VerificationFailed("base installer config: rootfs.diff_ids does not match the layers")
    if not isinstance(config.get("config") or {}, dict):
        raise VerificationFailed("base installer config: `config` is not an object")
    if config.get("architecture", spec.arch.value) != spec.arch.value:
        raise VerificationFailed(f"base installer is {config['architecture']}, not {spec.arch.value}")
    for layer in layers:
        if layer.descriptor.media_type not in _BASE_LAYER_TYPES:
            raise VerificationFailed(f"base installer layer type {layer.descriptor.media_type} is not supported")
    return config, [Blob(b.descriptor, b.path, d) for b, d in zip(layers, diff_ids, strict=True)]


def _assemble(spec: InstallerSpec, work: Path) -> InstallerImage:
    repo_tags = archive.repo_tags(spec.image_ref)
    config, base_layers = _load_base(spec)
    layout = OciLayout.create(work)
    kept = [layout.adopt(b, _BASE_LAYER_TYPES[b.descriptor.media_type]) for b in kept_base_layers(base_layers)]
    created = rfc3339(spec.source_date_epoch)
    history = base_history(config.get("history"), len(kept), created) or [
        {"created": created, "created_by": f"base installer layer {i + 1}"} for i in range(len(kept))
    ]
    layers = [*kept, write_layer(layout, artifact_entries(spec), mtime=spec.source_date_epoch)]
    history.append({"created": created, "created_by": f"image-factory: boot assets usr/install/{spec.arch.value}"})
    if spec.overlay is not None:
        layers.append(write_layer(layout, overlay_entries(spec.overlay), mtime=spec.source_date_epoch))
        history.append({"created": created, "created_by": f"image-factory: overlay {spec.overlay.name}"})
    container_config: Mapping[str, Any] = config.get("config") or {}
    config_blob = layout.put_bytes(
        image_config(
            arch=spec.arch.value,
            container_config=container_config,
            diff_ids=[layer.diff_id or "" for layer in layers],
            history=history,
            created=spec.source_date_epoch,
        ),
        mt.OCI_CONFIG,
    )
    manifest_bytes = image_manifest(config_blob.descriptor, [layer.descriptor for layer in layers])
    manifest_blob = layout.put_bytes(manifest_bytes, mt.OCI_MANIFEST)
    manifest = Manifest(manifest_bytes, mt.OCI_MANIFEST, manifest_blob.digest)
    image = InstallerImage(spec.arch, work, manifest, config_blob, tuple(layers), repo_tags, spec.source_date_epoch)
    entry = manifest.descriptor(spec.platform)
    layout.write_index([replace(entry, annotations={REF_NAME: spec.layout_ref_name})])
    logger.debug("installer %s: manifest %s, layers %s", spec.arch.value, manifest.digest, [b.digest for b in layers])
    return image


async def build_installer_image(spec: InstallerSpec, work: Path) -> InstallerImage:
    """Build one arch's installer into the OCI layout `work` (created if needed).

    `work/index.json` then names this image (tag `spec.layout_ref_name`); several arches may share one
    layout, and `write_installer_index` afterwards makes the multi-platform index its entry point.
    """
    return await asyncio.to_thread(_assemble, spec, work)


def _write_index(images: Sequence[InstallerImage], root: Path, ref_name: str) -> Manifest:
    arches = [image.arch for image in images]
    if not images or len(set(arches)) != len(arches):
        raise ValueError(f"an installer index needs images of distinct arches, got {arches}")
    layout = OciLayout.create(root)
    for image in images:
        if image.layout.resolve() != root.resolve():
            for blob in (*image.blobs(), Blob(image.manifest.descriptor(), image.manifest_path)):
                layout.adopt(blob)
    data = index_bytes([image.descriptor for image in images])
    blob = layout.put_bytes(data, mt.OCI_INDEX)
    layout.write_index([Descriptor(mt.OCI_INDEX, blob.digest, blob.descriptor.size, annotations={REF_NAME: ref_name})])
    return Manifest(data, mt.OCI_INDEX, blob.digest)


async def write_installer_index(images: Sequence[InstallerImage], layout: Path, ref_name: str = "latest") -> Manifest:
    """The multi-platform OCI index of per-arch installers (factory §9.2 step 7c: `platform: {architecture,
    os}`, no annotations), stored in `layout` (blobs linked in when needed) and named by its `index.json`."""
    return await asyncio.to_thread(_write_index, images, layout, ref_name)


async def docker_archive(images: Sequence[InstallerImage], out: Path) -> Path:
    """The `installer-<arch>.tar` / `<platform>-installer-<arch>.tar` download (imager §9 step 6, factory §15)."""
    entries = [archive.ArchiveImage(image.config, image.layers, image.repo_tags) for image in images]
    mtime = images[0].source_date_epoch if images else 0
    return await asyncio.to_thread(archive.write_docker_archive, entries, out, mtime=mtime)
