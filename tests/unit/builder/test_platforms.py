"""Platform, disk-default and board tables (factory spec §3, §3.1)."""

from __future__ import annotations

import pytest

from services.builder.enums import Arch, Platform
from services.builder.platforms import (
    BOARDS,
    DISK_DEFAULTS,
    PLATFORMS,
    SBC_DISK_IMAGE_PATH,
    BootMethod,
    PlatformInfo,
    platform_info,
)
from services.builder.profile import parse_profile_path
from services.catalog.versions import Version, parse

MIB = 1024 * 1024
BOTH = (Arch.AMD64, Arch.ARM64)
ISO_, D, P = BootMethod.ISO, BootMethod.DISK_IMAGE, BootMethod.PXE

# name: (label, archs, disk image suffix, boot methods, SecureBoot, min version) — factory §3.1 verbatim.
EXPECTED = {
    "metal": ("Bare Metal", BOTH, "raw.zst", (ISO_, D, P), True, None),
    "aws": ("Amazon Web Services (AWS)", BOTH, "raw.xz", (D,), False, None),
    "gcp": ("Google Cloud (GCP)", BOTH, "raw.tar.gz", (D,), False, None),
    "equinixMetal": ("Equinix Metal", BOTH, "", (P,), False, None),
    "azure": ("Microsoft Azure", BOTH, "vhd.xz", (D,), True, None),
    "digital-ocean": ("Digital Ocean", (Arch.AMD64,), "raw.gz", (D,), False, None),
    "nocloud": ("Nocloud", BOTH, "raw.xz", (D, ISO_, P), True, None),
    "openstack": ("OpenStack", BOTH, "raw.xz", (D, ISO_, P), False, None),
    "vmware": ("VMWare", BOTH, "ova", (D, ISO_), False, None),
    "akamai": ("Akamai", (Arch.AMD64,), "raw.gz", (D,), False, "1.7.0"),
    "cloudstack": ("Apache CloudStack", BOTH, "raw.gz", (D,), True, "1.8.0-alpha.2"),
    "hcloud": ("Hetzner", (Arch.AMD64,), "raw.xz", (D,), False, None),
    "oracle": ("Oracle Cloud", BOTH, "qcow2", (D,), False, None),
    "upcloud": ("UpCloud", (Arch.AMD64,), "raw.xz", (D,), False, None),
    "vultr": ("Vultr", (Arch.AMD64,), "", (ISO_, P), False, None),
    "exoscale": ("Exoscale", BOTH, "qcow2", (D,), False, "1.3.0"),
    "opennebula": ("OpenNebula", BOTH, "raw.zst", (D, ISO_), False, "1.7.0"),
    "scaleway": ("Scaleway", BOTH, "raw.zst", (D, ISO_), False, None),
    "alibabacloud": ("AlibabaCloud", BOTH, "qcow2", (D,), False, "1.14.0-beta.2"),
}


def test_platform_table_matches_spec() -> None:
    assert [p.platform.value for p in PLATFORMS] == list(EXPECTED)
    for info in PLATFORMS:
        label, archs, suffix, methods, sb, min_version = EXPECTED[info.platform.value]
        assert (info.label, info.archs, info.disk_image_suffix, info.boot_methods, info.secureboot) == (
            label,
            archs,
            suffix,
            methods,
            sb,
        )
        assert info.min_version == (parse(min_version) if min_version else None)


def test_accepted_platforms_are_the_imagers() -> None:
    """Factory §3.1 `newPlatform`: the UI list plus `container` and the `packet` alias."""
    assert {p.value for p in Platform} == set(EXPECTED) | {"container", "packet"}
    assert platform_info(Platform.CONTAINER) is None
    assert platform_info(Platform.PACKET) is None
    assert Platform.PACKET.talos_name == "equinixMetal"
    assert Platform.DIGITAL_OCEAN.talos_name == "digital-ocean"


def test_platform_min_version() -> None:
    cloudstack = platform_info(Platform.CLOUDSTACK)
    assert cloudstack is not None
    assert not cloudstack.supported(Version(1, 8, 0, ("alpha", 1)))
    assert cloudstack.supported(Version(1, 8, 0, ("alpha", 2)))
    metal = platform_info(Platform.METAL)
    assert metal is not None and metal.supported(Version(1, 2, 0))


@pytest.mark.parametrize("info", PLATFORMS, ids=lambda i: i.platform.value)
def test_default_disk_image_paths_parse(info: PlatformInfo) -> None:
    """Every UI default download path (`<platform>-<arch>.<suffix>`) is a valid disk-image path."""
    if not info.disk_image_suffix:
        return
    for arch in info.archs:
        profile = parse_profile_path(f"{info.platform}-{arch}.{info.disk_image_suffix}", Version(1, 12, 0))
        assert profile.platform is info.platform
        assert profile.arch is arch


@pytest.mark.parametrize(
    ("platform", "size_mib", "options"),
    [
        ("metal", 1246, ""),
        ("akamai", 1246, ""),
        ("alibabacloud", 1246, "cluster_size=8k"),
        ("hcloud", 1246, ""),
        ("nocloud", 1246, ""),
        ("opennebula", 1246, ""),
        ("openstack", 1246, ""),
        ("scaleway", 1246, ""),
        ("aws", 8192, ""),
        ("cloudstack", 8192, ""),
        ("digital-ocean", 8192, ""),
        ("gcp", 8192, ""),
        ("upcloud", 8192, ""),
        ("vmware", 8192, ""),
        ("vultr", 8192, ""),
        ("azure", 8192, "subformat=fixed,force_size"),
        ("exoscale", 10240, "cluster_size=8k"),
        ("oracle", 8192, "cluster_size=8k"),
    ],
)
def test_disk_defaults(platform: str, size_mib: int, options: str) -> None:
    defaults = DISK_DEFAULTS[Platform(platform)]
    assert (defaults.disk_size, defaults.disk_format_options) == (size_mib * MIB, options)


def test_disk_defaults_cover_exactly_the_builtin_platform_profiles() -> None:
    assert set(DISK_DEFAULTS) == set(Platform) - {Platform.CONTAINER, Platform.EQUINIX_METAL, Platform.PACKET}
    assert DISK_DEFAULTS[Platform.METAL].disk_size == 1306525696


def test_boards() -> None:
    by_name = {b.name: b for b in BOARDS}
    assert len(by_name) == len(BOARDS) == 29
    assert SBC_DISK_IMAGE_PATH == "metal-arm64.raw.xz"
    rpi5 = by_name["rpi_5"]
    assert (rpi5.overlay_name, rpi5.overlay_image, rpi5.min_version) == (
        "rpi_5",
        "siderolabs/sbc-raspberrypi",
        Version(1, 12, 3),
    )
    assert (by_name["nanopi_r4s"].overlay_name, by_name["nanopi_r4s"].overlay_image) == (
        "nanopi-r4s",
        "siderolabs/sbc-rockchip",
    )
    assert by_name["rockpi_4"].overlay_name == "rockpi4"
    assert by_name["orangepi_r1_plus_lts"].overlay_name == "orangepi-r1-plus-lts"
    assert by_name["jetson_nano"].overlay_image == "siderolabs/sbc-jetson"
    assert by_name["pine64"].overlay_image == "siderolabs/sbc-allwinner"
    assert by_name["rpi_generic"].min_version is None
    assert by_name["rock5b-plus"].min_version == Version(1, 13, 0, ("alpha", 1))
    assert not by_name["rock5a"].supported(Version(1, 9, 0))
    assert by_name["rock5a"].supported(Version(1, 10, 0, ("beta", 0)))
    for board in BOARDS:
        assert board.overlay_image.startswith("siderolabs/sbc-")
