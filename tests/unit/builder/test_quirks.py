"""Version quirks (imager spec §2.5): boundaries, and pre-releases counting as their release."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.builder import quirks
from services.builder.enums import Arch, Bootloader
from services.catalog.versions import Version, parse

MIB = 1024 * 1024

# (quirk, first version where it is true); pre-releases of that version count as the release.
AT_LEAST: list[tuple[Callable[[Version], bool], str]] = [
    (quirks.supports_reset_grub_option, "1.4.0"),
    (quirks.supports_uki, "1.5.0"),
    (quirks.supports_compressed_encoded_meta, "1.6.3"),
    (quirks.supports_overlay, "1.7.0"),
    (quirks.supports_schematic_extra_info, "1.7.0"),
    (quirks.use_zstd_compression, "1.8.0"),
    (quirks.supports_iso_label, "1.8.0"),
    (quirks.supports_halt_if_installed, "1.8.0"),
    (quirks.skip_data_partitions, "1.8.0"),
    (quirks.supports_selinux, "1.10.0"),
    (quirks.use_sd_boot_for_uefi, "1.10.0"),
    (quirks.supports_uki_profiles, "1.10.0"),
    (quirks.supports_unified_installer, "1.10.0"),
    (quirks.supports_embedded_config, "1.12.0"),
    (quirks.supports_disabling_module_signature_verification, "1.12.0"),
    (quirks.iso_supports_setting_bootloader, "1.12.0"),
    (quirks.proc_mem_override_never, "1.13.0"),
    (quirks.drop_init_on_alloc, "1.14.0"),
    (quirks.nvme_core_io_timeout_aws_only, "1.14.0"),
]
# (quirk, first version where it is false).
BELOW: list[tuple[Callable[[Version], bool], str]] = [
    (quirks.metal_console_ttys0, "1.8.0"),
    (quirks.supports_ima, "1.11.0"),
    (quirks.forces_lockdown_confidentiality, "1.14.0"),
]


def _previous(v: Version) -> Version:
    if v.patch:
        return Version(v.major, v.minor, v.patch - 1)
    return Version(v.major, v.minor - 1, 99)


@pytest.mark.parametrize(("quirk", "boundary"), AT_LEAST, ids=lambda x: getattr(x, "__name__", str(x)))
def test_at_least(quirk: Callable[[Version], bool], boundary: str) -> None:
    v = parse(boundary)
    assert quirk(v)
    assert quirk(Version(v.major, v.minor, v.patch, ("alpha", 0)))  # pre-release counts as release
    assert quirk(Version(v.major, v.minor + 1, 0))
    assert not quirk(_previous(v))
    assert not quirk(Version(_previous(v).major, _previous(v).minor, _previous(v).patch, ("rc", 1)))


@pytest.mark.parametrize(("quirk", "boundary"), BELOW, ids=lambda x: getattr(x, "__name__", str(x)))
def test_below(quirk: Callable[[Version], bool], boundary: str) -> None:
    v = parse(boundary)
    assert not quirk(v)
    assert not quirk(Version(v.major, v.minor, v.patch, ("alpha", 1)))
    assert quirk(_previous(v))


def test_ima_up_to_1_10_x() -> None:
    assert quirks.supports_ima(Version(1, 10, 99))
    assert not quirks.supports_ima(Version(1, 11, 0, ("beta", 0)))


@pytest.mark.parametrize(
    ("version", "codec"),
    [("1.7.9", quirks.Codec.XZ), ("1.8.0-alpha.0", quirks.Codec.ZSTD), ("1.12.0", quirks.Codec.ZSTD)],
)
def test_compression(version: str, codec: quirks.Codec) -> None:
    assert quirks.squashfs_compression(parse(version)) is codec
    assert quirks.initramfs_compression(parse(version)) is codec


@pytest.mark.parametrize(
    ("version", "modules", "firmware"),
    [
        ("1.9.5", "/lib/modules", "/lib/firmware"),
        ("1.10.0-beta.0", "/usr/lib/modules", "/usr/lib/firmware"),
    ],
)
def test_paths(version: str, modules: str, firmware: str) -> None:
    assert quirks.modules_path(parse(version)) == modules
    assert quirks.firmware_path(parse(version)) == firmware


def test_partition_sizes() -> None:
    assert quirks.boot_partition_size(Version(1, 10, 9)) == 1000 * MIB
    assert quirks.boot_partition_size(Version(1, 11, 0)) == 2000 * MIB
    assert quirks.uki_esp_size(Version(1, 11, 0)) == 2101 * MIB
    assert quirks.uki_esp_size(Version(1, 10, 0)) == 1101 * MIB


@pytest.mark.parametrize(
    ("version", "conf"),
    [("1.7.0", "lts_6.1.conf"), ("1.8.0", "lts_6.6.conf"), ("1.10.0", "lts_6.12.conf"), ("1.13.0", "lts_6.18.conf")],
)
def test_xfs_config(version: str, conf: str) -> None:
    assert quirks.xfs_mkfs_config(parse(version)) == f"/usr/share/xfsprogs/mkfs/{conf}"


def test_xfs_min_allocation_group_size() -> None:
    assert quirks.xfs_min_allocation_group_size(Version(1, 13, 5)) == 0
    assert quirks.xfs_min_allocation_group_size(Version(1, 14, 0)) == 64 * 1024 * MIB


@pytest.mark.parametrize(
    ("current", "secureboot", "arch", "version", "expected"),
    [
        (Bootloader.NONE, False, Arch.AMD64, "1.9.0", Bootloader.GRUB),
        (Bootloader.NONE, False, Arch.ARM64, "1.9.0", Bootloader.GRUB),
        (Bootloader.NONE, False, Arch.AMD64, "1.10.0", Bootloader.DUAL_BOOT),
        (Bootloader.NONE, False, Arch.ARM64, "1.10.0", Bootloader.SD_BOOT),
        (Bootloader.NONE, True, Arch.AMD64, "1.9.0", Bootloader.SD_BOOT),
        (Bootloader.GRUB, False, Arch.AMD64, "1.12.0", Bootloader.GRUB),
        (Bootloader.GRUB, True, Arch.AMD64, "1.12.0", Bootloader.SD_BOOT),  # SecureBoot always sd-boot
        (Bootloader.DUAL_BOOT, False, Arch.ARM64, "1.9.0", Bootloader.DUAL_BOOT),
    ],
)
def test_default_bootloader(
    current: Bootloader, secureboot: bool, arch: Arch, version: str, expected: Bootloader
) -> None:
    assert quirks.default_bootloader(current, secureboot=secureboot, arch=arch, version=parse(version)) is expected


@pytest.mark.parametrize(
    ("secureboot", "bootloader", "version", "flavor"),
    [
        (True, Bootloader.SD_BOOT, "1.9.0", quirks.ISOFlavor.UEFI),
        (False, Bootloader.DUAL_BOOT, "1.12.0", quirks.ISOFlavor.HYBRID),
        (False, Bootloader.SD_BOOT, "1.12.0", quirks.ISOFlavor.UEFI),
        (False, Bootloader.GRUB, "1.12.0", quirks.ISOFlavor.GRUB),
        (False, Bootloader.SD_BOOT, "1.11.0", quirks.ISOFlavor.HYBRID),
        (False, Bootloader.NONE, "1.10.0", quirks.ISOFlavor.HYBRID),
        (False, Bootloader.NONE, "1.9.0", quirks.ISOFlavor.GRUB),
    ],
)
def test_iso_flavor(secureboot: bool, bootloader: Bootloader, version: str, flavor: quirks.ISOFlavor) -> None:
    assert quirks.iso_flavor(secureboot=secureboot, bootloader=bootloader, version=parse(version)) is flavor
