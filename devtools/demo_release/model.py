"""What the demo release contains and what `publish` reports back."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.shared.tools import DEFAULT_SOURCE_DATE_EPOCH

NAMESPACE = "siderolabs"
ARCHES = ("amd64", "arm64")
# Two sides of every version quirk the factory has (imager spec §2.5, factory spec §7.1): < 1.10
# (GRUB, `installer`, /lib paths), 1.11 (≥ 1.10, < 1.12), ≥ 1.12 (ISO bootloader rules), and a
# pre-release that the version filter keeps because it shares major.minor with the newest tag.
VERSIONS = ("v1.9.6", "v1.11.5", "v1.12.1", "v1.13.0-beta.1")
OVERLAY_NAME = "demo_board"
OVERLAY_IMAGE = "sbc-demo"
OVERLAY_TAG = "v0.1.0"

_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True)
class TalosVersion:
    tag: str  # "v1.12.1"

    def __post_init__(self) -> None:
        if not _SEMVER.match(self.tag):
            raise ValueError(f"not a Talos version tag: {self.tag!r}")

    @property
    def core(self) -> tuple[int, int, int]:
        """major.minor.patch; quirks ignore the pre-release (imager spec §0 "Version")."""
        m = _SEMVER.match(self.tag)
        assert m is not None
        return int(m[1]), int(m[2]), int(m[3])

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return self.core >= (major, minor, patch)

    @property
    def zstd_initramfs(self) -> bool:
        """initramfs.xz holds zstd from 1.8 on, xz before (imager spec §1.1)."""
        return self.at_least(1, 8)

    @property
    def lib_prefix(self) -> str:
        """Where modules and firmware live: /usr/lib from 1.10, /lib before (imager spec §2.5)."""
        return "usr/lib" if self.at_least(1, 10) else "lib"

    @property
    def installer_repository(self) -> str:
        """`installer-base` from 1.10 (`SupportsUnifiedInstaller`), `installer` before (imager §1.2)."""
        return "installer-base" if self.at_least(1, 10) else "installer"

    @property
    def has_overlays(self) -> bool:
        return self.at_least(1, 7)


@dataclass(frozen=True)
class DemoOverlay:
    """One SBC overlay of the demo: catalog name `name`, image `siderolabs/<image>:<tag>` (factory §7.4)."""

    name: str  # "rpi_generic"
    image: str  # "sbc-raspberrypi", without the namespace
    tag: str = OVERLAY_TAG


DEMO_BOARD = DemoOverlay(OVERLAY_NAME, OVERLAY_IMAGE)
# What the web UI offers by default (the builder's board table, factory spec §3.1: `rpi_generic` has no
# minimum version, and every demo version is ≥ 1.7, so all of them list it). Same demo installer.
RPI_GENERIC = DemoOverlay("rpi_generic", "sbc-raspberrypi")
OVERLAYS = (DEMO_BOARD, RPI_GENERIC)  # the order of `overlays.yaml`


def source_date_epoch() -> int:
    """Every mtime and `created` field comes from here, so equal inputs give equal digests."""
    return int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_SOURCE_DATE_EPOCH)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PublishedImage:
    repository: str  # "siderolabs/imager"
    tag: str
    digest: str  # of the index; this is what is signed (factory spec §7.2 step 2)
    platforms: Mapping[str, str] = field(default_factory=dict)  # arch -> image manifest digest

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PublishedExtension:
    name: str
    tag: str  # equals metadata.version: "<version>-<talos tag>"
    digest: str
    talos_version: str
    compatibility: str  # metadata.compatibility.talos.version
    description: str
    catalog_line: str  # "<registry>/siderolabs/<name>:<tag>@<digest>" (factory spec §7.3)


@dataclass(frozen=True)
class DemoRelease:
    registry: str
    namespace: str
    versions: tuple[str, ...]
    kernel_version: str
    public_key_pem: bytes
    images: tuple[PublishedImage, ...]
    extensions: Mapping[str, tuple[PublishedExtension, ...]]  # talos tag -> its catalog

    def image(self, name: str, tag: str) -> PublishedImage:
        repository = f"{self.namespace}/{name}"
        for image in self.images:
            if image.repository == repository and image.tag == tag:
                return image
        raise KeyError(f"{repository}:{tag} was not published")

    def digests(self) -> dict[str, str]:
        """`repository:tag` -> index digest, for comparing two publishes."""
        return {f"{i.repository}:{i.tag}": i.digest for i in self.images}
