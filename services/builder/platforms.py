"""Platform, disk-default and SBC board tables (factory spec §3, §3.1; imager spec §2.3).

Data only. `DISK_DEFAULTS` feeds `parse_profile_path`; `PLATFORMS` and `BOARDS` are the UI metadata
(Talos `pkg/machinery/platforms`) the gateway and the UI list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from services.builder.enums import Arch, Platform
from services.catalog.versions import Version
from services.catalog.versions import parse as _parse

MIB: Final = 1024 * 1024
MIN_RAW_DISK_SIZE: Final = 1246 * MIB  # imager §2.3 `MinRAWDiskSize` = 1 306 525 696
DEFAULT_RAW_DISK_SIZE: Final = 8192 * MIB  # imager §2.3 `DefaultRAWDiskSize`


@dataclass(frozen=True)
class DiskDefaults:
    """What rule 8.5 of factory §3 takes from Talos `profile.Default[<platform>]`."""

    disk_size: int
    disk_format_options: str = ""


_CLUSTER_8K: Final = "cluster_size=8k"

# Factory §3 rule 8.5 table. Platforms without a built-in profile (container, equinixMetal, packet)
# keep the 8192 MiB default and no options.
DISK_DEFAULTS: Final[Mapping[Platform, DiskDefaults]] = MappingProxyType(
    {
        Platform.METAL: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.AKAMAI: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.ALIBABACLOUD: DiskDefaults(MIN_RAW_DISK_SIZE, _CLUSTER_8K),
        Platform.HCLOUD: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.NOCLOUD: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.OPENNEBULA: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.OPENSTACK: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.SCALEWAY: DiskDefaults(MIN_RAW_DISK_SIZE),
        Platform.AWS: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.CLOUDSTACK: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.DIGITAL_OCEAN: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.GCP: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.UPCLOUD: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.VMWARE: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.VULTR: DiskDefaults(DEFAULT_RAW_DISK_SIZE),
        Platform.AZURE: DiskDefaults(DEFAULT_RAW_DISK_SIZE, "subformat=fixed,force_size"),
        Platform.EXOSCALE: DiskDefaults(10240 * MIB, _CLUSTER_8K),
        Platform.ORACLE: DiskDefaults(DEFAULT_RAW_DISK_SIZE, _CLUSTER_8K),
    }
)


class BootMethod:
    ISO: Final = "iso"
    DISK_IMAGE: Final = "disk-image"
    PXE: Final = "pxe"


@dataclass(frozen=True)
class PlatformInfo:
    """One row of factory §3.1 (Talos `platforms.go`)."""

    platform: Platform
    label: str
    archs: tuple[Arch, ...]
    disk_image_suffix: str  # default download, e.g. `raw.zst` → `metal-amd64.raw.zst`; "" = none
    boot_methods: tuple[str, ...]
    secureboot: bool = False
    min_version: Version | None = None

    def supported(self, version: Version) -> bool:
        return self.min_version is None or version >= self.min_version


_BOTH: Final = (Arch.AMD64, Arch.ARM64)
_AMD64: Final = (Arch.AMD64,)
_I, _D, _P = BootMethod.ISO, BootMethod.DISK_IMAGE, BootMethod.PXE

# Factory §3.1, in the reference's order.
PLATFORMS: Final[tuple[PlatformInfo, ...]] = (
    PlatformInfo(Platform.METAL, "Bare Metal", _BOTH, "raw.zst", (_I, _D, _P), secureboot=True),
    PlatformInfo(Platform.AWS, "Amazon Web Services (AWS)", _BOTH, "raw.xz", (_D,)),
    PlatformInfo(Platform.GCP, "Google Cloud (GCP)", _BOTH, "raw.tar.gz", (_D,)),
    PlatformInfo(Platform.EQUINIX_METAL, "Equinix Metal", _BOTH, "", (_P,)),
    PlatformInfo(Platform.AZURE, "Microsoft Azure", _BOTH, "vhd.xz", (_D,), secureboot=True),
    PlatformInfo(Platform.DIGITAL_OCEAN, "Digital Ocean", _AMD64, "raw.gz", (_D,)),
    PlatformInfo(Platform.NOCLOUD, "Nocloud", _BOTH, "raw.xz", (_D, _I, _P), secureboot=True),
    PlatformInfo(Platform.OPENSTACK, "OpenStack", _BOTH, "raw.xz", (_D, _I, _P)),
    PlatformInfo(Platform.VMWARE, "VMWare", _BOTH, "ova", (_D, _I)),
    PlatformInfo(Platform.AKAMAI, "Akamai", _AMD64, "raw.gz", (_D,), min_version=Version(1, 7, 0)),
    PlatformInfo(
        Platform.CLOUDSTACK,
        "Apache CloudStack",
        _BOTH,
        "raw.gz",
        (_D,),
        secureboot=True,
        min_version=Version(1, 8, 0, ("alpha", 2)),
    ),
    PlatformInfo(Platform.HCLOUD, "Hetzner", _AMD64, "raw.xz", (_D,)),
    PlatformInfo(Platform.ORACLE, "Oracle Cloud", _BOTH, "qcow2", (_D,)),
    PlatformInfo(Platform.UPCLOUD, "UpCloud", _AMD64, "raw.xz", (_D,)),
    PlatformInfo(Platform.VULTR, "Vultr", _AMD64, "", (_I, _P)),
    PlatformInfo(Platform.EXOSCALE, "Exoscale", _BOTH, "qcow2", (_D,), min_version=Version(1, 3, 0)),
    PlatformInfo(Platform.OPENNEBULA, "OpenNebula", _BOTH, "raw.zst", (_D, _I), min_version=Version(1, 7, 0)),
    PlatformInfo(Platform.SCALEWAY, "Scaleway", _BOTH, "raw.zst", (_D, _I)),
    PlatformInfo(
        Platform.ALIBABACLOUD, "AlibabaCloud", _BOTH, "qcow2", (_D,), min_version=Version(1, 14, 0, ("beta", 2))
    ),
)


@dataclass(frozen=True)
class Board:
    """An SBC (factory §3.1, Talos `sbcs.go`): built as `metal-arm64.raw.xz` with this overlay."""

    name: str
    overlay_name: str
    overlay_image: str
    min_version: Version | None = None

    def supported(self, version: Version) -> bool:
        return self.min_version is None or version >= self.min_version


SBC_DISK_IMAGE_PATH: Final = "metal-arm64.raw.xz"

_RPI: Final = "siderolabs/sbc-raspberrypi"
_ALLWINNER: Final = "siderolabs/sbc-allwinner"
_ROCKCHIP: Final = "siderolabs/sbc-rockchip"
_JETSON: Final = "siderolabs/sbc-jetson"


# Factory §3.1, in the reference's order. The last group's overlay name equals the board name.
BOARDS: Final[tuple[Board, ...]] = (
    Board("rpi_5", "rpi_5", _RPI, _parse("1.12.3")),
    Board("rpi_generic", "rpi_generic", _RPI),
    Board("revpi_generic", "revpi_generic", _RPI, _parse("1.10.0-beta.0")),
    Board("bananapi_m64", "bananapi_m64", _ALLWINNER),
    Board("nanopi_r4s", "nanopi-r4s", _ROCKCHIP, _parse("1.3.0")),
    Board("nanopi_r5s", "nanopi-r5s", _ROCKCHIP, _parse("1.8.0-alpha.2")),
    Board("jetson_nano", "jetson_nano", _JETSON),
    Board("libretech_all_h3_cc_h5", "libretech_all_h3_cc_h5", _ALLWINNER),
    Board("orangepi_r1_plus_lts", "orangepi-r1-plus-lts", _ROCKCHIP, _parse("1.7.0")),
    Board("pine64", "pine64", _ALLWINNER),
    Board("rock64", "rock64", _ROCKCHIP),
    Board("rock4cplus", "rock4cplus", _ROCKCHIP, _parse("1.7.0")),
    Board("rock4se", "rock4se", _ROCKCHIP, _parse("1.8.0-alpha.1")),
    Board("rock5a", "rock5a", _ROCKCHIP, _parse("1.10.0-beta.0")),
    Board("rock5b", "rock5b", _ROCKCHIP, _parse("1.9.2")),
    Board("rockpi_4", "rockpi4", _ROCKCHIP),
    Board("rockpi_4c", "rockpi4c", _ROCKCHIP),
    Board("helios64", "helios64", _ROCKCHIP, _parse("1.8.0-alpha.2")),
    Board("turingrk1", "turingrk1", _ROCKCHIP, _parse("1.9.0-beta.0")),
    Board("orangepi-5", "orangepi-5", _ROCKCHIP, _parse("1.9.2")),
    Board("orangepi-5-plus", "orangepi-5-plus", _ROCKCHIP, _parse("1.10.0-beta.0")),
    Board("rockpro64", "rockpro64", _ROCKCHIP, _parse("1.10.0-beta.0")),
    Board("odroid-m1", "odroid-m1", _ROCKCHIP, _parse("1.12.0-beta.0")),
    Board("radxa-zero-3e", "radxa-zero-3e", _ROCKCHIP, _parse("1.12.0-beta.0")),
    Board("rock3b", "rock3b", _ROCKCHIP, _parse("1.12.0-beta.0")),
    Board("orangepi-5-max", "orangepi-5-max", _ROCKCHIP, _parse("1.12.0-beta.0")),
    Board("rock5t", "rock5t", _ROCKCHIP, _parse("1.12.0-beta.0")),
    Board("friendlyelec-cm3588-nas", "friendlyelec-cm3588-nas", _ROCKCHIP, _parse("1.13.0-alpha.1")),
    Board("rock5b-plus", "rock5b-plus", _ROCKCHIP, _parse("1.13.0-alpha.1")),
)


def platform_info(platform: Platform) -> PlatformInfo | None:
    """The UI row of a platform; None for `container` and `packet`, which the UI does not list."""
    return next((p for p in PLATFORMS if p.platform is platform), None)
