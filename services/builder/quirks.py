"""Talos version quirks (imager spec §2.5, Talos `pkg/machinery/imager/quirks`).

Every quirk looks only at major.minor.patch: `1.14.0-alpha.1` behaves as `1.14.0` (imager §0). The
reference also accepts unparseable versions and then treats most quirks as "latest" but a few as
false (imager §14.5); we never get there, because `parse_requested` refuses such versions first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from services.builder.enums import Arch, Bootloader
from services.catalog.versions import Version

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB


def _release(version: Version) -> Version:
    return Version(version.major, version.minor, version.patch)


def _at_least(version: Version, major: int, minor: int, patch: int = 0) -> bool:
    return _release(version) >= Version(major, minor, patch)


def supports_reset_grub_option(version: Version) -> bool:
    """GRUB "Reset" menu entries, ISO and disk (≥1.4)."""
    return _at_least(version, 1, 4)


def supports_uki(version: Version) -> bool:
    """UKI built; SecureBoot and kind `uki` allowed (≥1.5)."""
    return _at_least(version, 1, 5)


def supports_compressed_encoded_meta(version: Version) -> bool:
    """META on the cmdline is gzip'ed when longer than 256 bytes (≥1.6.3, imager §8.2)."""
    return _at_least(version, 1, 6, 3)


def supports_overlay(version: Version) -> bool:
    """Overlays allowed (≥1.7, factory §4 step 3)."""
    return _at_least(version, 1, 7)


def supports_schematic_extra_info(version: Version) -> bool:
    """The schematic extension's manifest carries `extraInfo` (factory §7.6: same gate as overlays)."""
    return supports_overlay(version)


class Codec(StrEnum):
    """Compression of extension squashfs images and of the appended initramfs cpio (imager §4.3, §4.7)."""

    ZSTD = "zstd"
    XZ = "xz"


def use_zstd_compression(version: Version) -> bool:
    return _at_least(version, 1, 8)


def squashfs_compression(version: Version) -> Codec:
    """zstd level 18 from 1.8, xz (dict-size 100%) before (imager §4.3)."""
    return Codec.ZSTD if use_zstd_compression(version) else Codec.XZ


def initramfs_compression(version: Version) -> Codec:
    """Codec of the base `initramfs.xz` (despite its name) and of the appended cpio (imager §1.1, §4.7)."""
    return Codec.ZSTD if use_zstd_compression(version) else Codec.XZ


def supports_iso_label(version: Version) -> bool:
    """ISO `-volid`/`-volset-id` (≥1.8)."""
    return _at_least(version, 1, 8)


def metal_console_ttys0(version: Version) -> bool:
    """metal amd64 adds `console=ttyS0` (<1.8)."""
    return not _at_least(version, 1, 8)


def supports_halt_if_installed(version: Version) -> bool:
    """ISO cmdline `talos.halt_if_installed=1` (≥1.8)."""
    return _at_least(version, 1, 8)


def skip_data_partitions(version: Version) -> bool:
    """Disk images without STATE/EPHEMERAL (≥1.8)."""
    return _at_least(version, 1, 8)


def supports_selinux(version: Version) -> bool:
    """`selinux=1` (≥1.10)."""
    return _at_least(version, 1, 10)


def use_sd_boot_for_uefi(version: Version) -> bool:
    """dual-boot/sd-boot defaults, hybrid ISO, installer carries UKI + sd-boot (≥1.10)."""
    return _at_least(version, 1, 10)


def modules_path(version: Version) -> str:
    """Where extensions keep kernel modules (imager §4.2): `/usr/lib/modules` from 1.10."""
    return "/usr/lib/modules" if _at_least(version, 1, 10) else "/lib/modules"


def firmware_path(version: Version) -> str:
    """Where extensions keep firmware (imager §4.4): `/usr/lib/firmware` from 1.10."""
    return "/usr/lib/firmware" if _at_least(version, 1, 10) else "/lib/firmware"


def supports_uki_profiles(version: Version) -> bool:
    """`.profile` sections and per-profile `.pcrsig` (≥1.10, imager §6.1)."""
    return _at_least(version, 1, 10)


def supports_unified_installer(version: Version) -> bool:
    """Base installer is `installer-base`; installers/UKIs take extra kernel args (≥1.10, factory §4)."""
    return _at_least(version, 1, 10)


def supports_ima(version: Version) -> bool:
    """`ima_*` kernel args (≤1.10.x)."""
    return not _at_least(version, 1, 11)


def boot_partition_size(version: Version) -> int:
    """BOOT partition, part of the UKI ESP and of the disk size (2000 MiB from 1.11, else 1000 MiB)."""
    return 2000 * MIB if _at_least(version, 1, 11) else 1000 * MIB


GRUB_ESP_SIZE: Final = 100 * MIB  # imager §2.5, `quirks/partitions.go`
BIOS_PARTITION_SIZE: Final = 1 * MIB
META_PARTITION_SIZE: Final = 1 * MIB
STATE_PARTITION_SIZE: Final = 100 * MIB


def uki_esp_size(version: Version) -> int:
    """ESP of sd-boot images: 100 + 1 + bootSize MiB (2101 / 1101)."""
    return GRUB_ESP_SIZE + BIOS_PARTITION_SIZE + boot_partition_size(version)


def supports_embedded_config(version: Version) -> bool:
    """The factory refuses an embedded machine configuration below 1.12 (factory §4 step 1)."""
    return _at_least(version, 1, 12)


def supports_disabling_module_signature_verification(version: Version) -> bool:
    """`module.sig_enforce=1` on the cmdline (≥1.12)."""
    return _at_least(version, 1, 12)


def iso_supports_setting_bootloader(version: Version) -> bool:
    """`isoOptions.bootloader` honoured and defaulted (≥1.12)."""
    return _at_least(version, 1, 12)


def proc_mem_override_never(version: Version) -> bool:
    """`proc_mem.force_override=never` (≥1.13)."""
    return _at_least(version, 1, 13)


def xfs_mkfs_config(version: Version) -> str:
    """`mkfs.xfs -c options=` file for BOOT."""
    if _at_least(version, 1, 13):
        name = "lts_6.18.conf"
    elif _at_least(version, 1, 10):
        name = "lts_6.12.conf"
    elif _at_least(version, 1, 8):
        name = "lts_6.6.conf"
    else:
        name = "lts_6.1.conf"
    return f"/usr/share/xfsprogs/mkfs/{name}"


def xfs_min_allocation_group_size(version: Version) -> int:
    """64 GiB from 1.14, 0 (unset) before; only applies with a device size, never in image mode."""
    return 64 * GIB if _at_least(version, 1, 14) else 0


def drop_init_on_alloc(version: Version) -> bool:
    """No `init_on_alloc=1` (≥1.14)."""
    return _at_least(version, 1, 14)


def nvme_core_io_timeout_aws_only(version: Version) -> bool:
    """`nvme_core.io_timeout` moves from the defaults to the aws platform args (≥1.14)."""
    return _at_least(version, 1, 14)


def forces_lockdown_confidentiality(version: Version) -> bool:
    """SecureBoot cmdline adds `lockdown=confidentiality` (<1.14)."""
    return not _at_least(version, 1, 14)


def default_bootloader(current: Bootloader, *, secureboot: bool, arch: Arch, version: Version) -> Bootloader:
    """Talos `select(current)` in `Output.FillDefaults` (imager §2.2 step 4)."""
    if current is not Bootloader.NONE and not secureboot:
        return current
    if secureboot:
        return Bootloader.SD_BOOT
    if not use_sd_boot_for_uefi(version):
        return Bootloader.GRUB
    if arch is Arch.ARM64:
        return Bootloader.SD_BOOT
    return Bootloader.DUAL_BOOT


class ISOFlavor(StrEnum):
    """Which ISO generator runs (imager §5.1)."""

    UEFI = "uefi"  # sd-boot only
    HYBRID = "hybrid"  # BIOS GRUB + UEFI sd-boot
    GRUB = "grub"  # BIOS + UEFI GRUB


def iso_flavor(*, secureboot: bool, bootloader: Bootloader, version: Version) -> ISOFlavor:
    """Imager §5.1, conditions in table order; `bootloader` is the resolved `isoOptions.bootloader`."""
    if secureboot:
        return ISOFlavor.UEFI
    if iso_supports_setting_bootloader(version):
        return {Bootloader.SD_BOOT: ISOFlavor.UEFI, Bootloader.GRUB: ISOFlavor.GRUB}.get(bootloader, ISOFlavor.HYBRID)
    return ISOFlavor.HYBRID if use_sd_boot_for_uefi(version) else ISOFlavor.GRUB
