"""`:path` → profile (factory spec §3): every example of `profile_test.go`, the error texts, the rules."""

from __future__ import annotations

import pytest

from services.builder.profile import (
    PROFILE_PATH_ERROR_PREFIX,
    Arch,
    Compression,
    ImageFormat,
    ImageOptions,
    InvalidProfilePath,
    Output,
    OutputKind,
    Platform,
    Profile,
    installer_profile,
    parse_installer_image,
    parse_profile_path,
)
from services.catalog.versions import Version
from services.shared.errors import InvalidArgument

V1_10 = Version(1, 10, 0)
MIB = 1024 * 1024
AMD64, ARM64 = Arch.AMD64, Arch.ARM64


def image(size_mib: int, fmt: ImageFormat, out: Compression = Compression.RAW, options: str = "") -> Output:
    return Output(
        OutputKind.IMAGE, out, ImageOptions(disk_size=size_mib * MIB, disk_format=fmt, disk_format_options=options)
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Factory §3 examples (`profile_test.go`).
        ("kernel-amd64", Profile(AMD64, Platform.METAL, Output(OutputKind.KERNEL))),
        ("cmdline-aws-amd64-secureboot", Profile(AMD64, Platform.AWS, Output(OutputKind.CMDLINE), secureboot=True)),
        ("initramfs-amd64.xz", Profile(AMD64, Platform.METAL, Output(OutputKind.INITRAMFS))),
        ("metal-arm64-secureboot.iso", Profile(ARM64, Platform.METAL, Output(OutputKind.ISO), secureboot=True)),
        ("metal-amd64-secureboot-uki.efi", Profile(AMD64, Platform.METAL, Output(OutputKind.UKI), secureboot=True)),
        ("installer-amd64.tar", Profile(AMD64, Platform.METAL, Output(OutputKind.INSTALLER))),
        ("metal-installer-amd64.tar", Profile(AMD64, Platform.METAL, Output(OutputKind.INSTALLER))),
        ("digital-ocean-installer-amd64.tar", Profile(AMD64, Platform.DIGITAL_OCEAN, Output(OutputKind.INSTALLER))),
        ("metal-arm64.raw.xz", Profile(ARM64, Platform.METAL, image(1246, ImageFormat.RAW, Compression.XZ))),
        ("metal-arm64.raw.zst", Profile(ARM64, Platform.METAL, image(1246, ImageFormat.RAW, Compression.ZST))),
        (
            "aws-amd64-secureboot.qcow2.tar.gz",
            Profile(
                AMD64,
                Platform.AWS,
                image(8192, ImageFormat.QCOW2, Compression.TAR_GZ, "cluster_size=8k"),
                secureboot=True,
            ),
        ),
        (
            "azure-amd64.vhd",
            Profile(AMD64, Platform.AZURE, image(8192, ImageFormat.VHD, options="subformat=fixed,force_size")),
        ),
        (
            "digital-ocean-amd64.raw.gz",
            Profile(AMD64, Platform.DIGITAL_OCEAN, image(8192, ImageFormat.RAW, Compression.GZ)),
        ),
        # More rules.
        (
            "installer-arm64-secureboot.tar",
            Profile(ARM64, Platform.METAL, Output(OutputKind.INSTALLER), secureboot=True),
        ),
        (
            "aws-installer-arm64-secureboot.tar",
            Profile(ARM64, Platform.AWS, Output(OutputKind.INSTALLER), secureboot=True),
        ),
        ("kernel-x86_64", Profile(AMD64, Platform.METAL, Output(OutputKind.KERNEL))),
        ("kernel-i386", Profile(AMD64, Platform.METAL, Output(OutputKind.KERNEL))),
        ("nocloud-x86_64.iso", Profile(AMD64, Platform.NOCLOUD, Output(OutputKind.ISO))),
        ("cmdline-digital-ocean-amd64", Profile(AMD64, Platform.DIGITAL_OCEAN, Output(OutputKind.CMDLINE))),
        ("packet-amd64.iso", Profile(AMD64, Platform.PACKET, Output(OutputKind.ISO))),
        ("equinixMetal-arm64.iso", Profile(ARM64, Platform.EQUINIX_METAL, Output(OutputKind.ISO))),
        ("container-amd64-uki.efi", Profile(AMD64, Platform.CONTAINER, Output(OutputKind.UKI))),
        ("metal-amd64.raw", Profile(AMD64, Platform.METAL, image(1246, ImageFormat.RAW))),
        (
            "metal-amd64.qcow2",
            Profile(AMD64, Platform.METAL, image(1246, ImageFormat.QCOW2, options="cluster_size=8k")),
        ),
        ("vmware-amd64.ova", Profile(AMD64, Platform.VMWARE, image(8192, ImageFormat.OVA))),
        (
            "exoscale-amd64.qcow2.xz",
            Profile(AMD64, Platform.EXOSCALE, image(10240, ImageFormat.QCOW2, Compression.XZ, "cluster_size=8k")),
        ),
        (
            "oracle-arm64.qcow2",
            Profile(ARM64, Platform.ORACLE, image(8192, ImageFormat.QCOW2, options="cluster_size=8k")),
        ),
        (
            "alibabacloud-amd64.qcow2",
            Profile(AMD64, Platform.ALIBABACLOUD, image(1246, ImageFormat.QCOW2, options="cluster_size=8k")),
        ),
        ("gcp-amd64.raw.tar.gz", Profile(AMD64, Platform.GCP, image(8192, ImageFormat.RAW, Compression.TAR_GZ))),
        # The platform's options win even over the requested format (rule 8.5).
        (
            "azure-amd64.raw.xz",
            Profile(AMD64, Platform.AZURE, image(8192, ImageFormat.RAW, Compression.XZ, "subformat=fixed,force_size")),
        ),
        ("oracle-amd64.raw", Profile(AMD64, Platform.ORACLE, image(8192, ImageFormat.RAW, options="cluster_size=8k"))),
        # No built-in profile: 8192 MiB default, the qcow2 options stay.
        (
            "equinixMetal-amd64.qcow2",
            Profile(AMD64, Platform.EQUINIX_METAL, image(8192, ImageFormat.QCOW2, options="cluster_size=8k")),
        ),
        ("container-arm64.raw.gz", Profile(ARM64, Platform.CONTAINER, image(8192, ImageFormat.RAW, Compression.GZ))),
        # `initramfs-` without `.xz` falls through to later rules.
        ("initramfs-amd64.iso", None),
    ],
)
def test_parse(path: str, expected: Profile | None) -> None:
    if expected is None:
        with pytest.raises(InvalidProfilePath):
            parse_profile_path(path, V1_10)
        return
    assert parse_profile_path(path, V1_10) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("kernel-foo", 'invalid architecture: "foo"'),
        ("metal-rpi_generic-arm64.raw.xz", 'invalid architecture: "rpi_generic-arm64"'),
        ("metal-amd64.ssd", 'invalid profile path: "metal-amd64.ssd"'),
        ("metal-amd64.ssd.xz", 'invalid profile path: "metal-amd64.ssd"'),
        ("metal-amd64.ssd.tar.gz", 'invalid profile path: "metal-amd64.ssd"'),
        ("metal.iso", 'invalid platform-arch: "metal"'),
        ("metal-secureboot.iso", 'invalid platform-arch: "metal"'),
        ("cmdline-metal", 'invalid platform-arch: "metal"'),
        ("kernel-aarch64", 'invalid architecture: "aarch64"'),
        ("kernel-amd64-secureboot", 'invalid architecture: "amd64-secureboot"'),
        ("kernel-", 'invalid architecture: ""'),
        ("initramfs-.xz", 'invalid architecture: ""'),
        ("initramfs-metal-amd64.xz", 'invalid architecture: "metal-amd64"'),
        ("initramfs-amd64", 'invalid profile path: "initramfs-amd64"'),
        ("installer-amd64.tar.gz", 'invalid profile path: "installer-amd64"'),
        ("installer-foo.tar", 'invalid architecture: "foo"'),
        ("cmdline-metal-amd64.iso", 'invalid architecture: "amd64.iso"'),
        ("metal-AMD64.iso", 'invalid architecture: "AMD64"'),
        ("digital-ocean.iso", 'invalid architecture: "ocean"'),
        ("", 'invalid profile path: ""'),
        ('metal-"x".iso', 'invalid architecture: "\\"x\\""'),
        ("metal-a\nb.iso", 'invalid architecture: "a\\nb"'),
        # Unknown platforms: the reference fails at build time with 500; we refuse them here.
        ("foo-amd64.iso", 'unknown platform: "foo"'),
        ("cmdline-foo-amd64", 'unknown platform: "foo"'),
        ("foo-installer-amd64.tar", 'unknown platform: "foo"'),
        ("Metal-amd64.raw.xz", 'unknown platform: "Metal"'),
        ("iso-amd64.iso", 'unknown platform: "iso"'),
        # Paths that crash the reference (nil imageOptions of non-platform defaults).
        ("iso-amd64.raw.xz", 'invalid profile path: "iso-amd64.raw"'),
        ("installer-amd64.raw", 'invalid profile path: "installer-amd64.raw"'),
        ("installer-amd64.qcow2.xz", 'invalid profile path: "installer-amd64.qcow2"'),
    ],
)
def test_errors(path: str, message: str) -> None:
    with pytest.raises(InvalidProfilePath) as err:
        parse_profile_path(path, V1_10)
    assert err.value.message == message
    assert isinstance(err.value, InvalidArgument)  # INVALID_ARGUMENT → 400


def test_gateway_prefix_reproduces_asserted_body() -> None:
    # `IF:internal/integration/download_test.go`: the body of a 400 for `metal-amd64.ssd`.
    with pytest.raises(InvalidProfilePath) as err:
        parse_profile_path("metal-amd64.ssd", V1_10)
    assert PROFILE_PATH_ERROR_PREFIX + err.value.message + "\n" == (
        'error parsing profile from path: invalid profile path: "metal-amd64.ssd"\n'
    )


def test_parse_does_not_depend_on_version() -> None:
    for version in (Version(1, 2, 0), Version(1, 7, 0), Version(1, 15, 0, ("alpha", 0))):
        assert parse_profile_path("metal-arm64.raw.xz", version) == parse_profile_path("metal-arm64.raw.xz", V1_10)


@pytest.mark.parametrize(
    "path",
    [
        "metal-amd64.iso",
        "metal-arm64-secureboot.iso",
        "aws-amd64.raw.xz",
        "gcp-amd64.raw.tar.gz",
        "azure-arm64-secureboot.vhd.zst",
        "vmware-amd64.ova",
        "oracle-amd64.qcow2",
        "metal-amd64-secureboot-uki.efi",
        "kernel-arm64",
        "cmdline-nocloud-amd64-secureboot",
        "installer-amd64.tar",
        "installer-arm64-secureboot.tar",
    ],
)
def test_output_name_round_trips(path: str) -> None:
    """Imager §2.6 names are factory paths (except initramfs and platform installers)."""
    assert parse_profile_path(path, V1_10).output_name() == path


def test_output_name_differs_for_initramfs_and_platform_installer() -> None:
    assert parse_profile_path("initramfs-arm64.xz", V1_10).output_name() == "initramfs-metal-arm64.xz"
    assert parse_profile_path("aws-installer-amd64.tar", V1_10).output_name() == "installer-amd64.tar"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("installer", (Platform.METAL, False)),
        ("installer-secureboot", (Platform.METAL, True)),
        ("metal-installer", (Platform.METAL, False)),
        ("metal-installer-secureboot", (Platform.METAL, True)),
        ("aws-installer", (Platform.AWS, False)),
        ("digital-ocean-installer-secureboot", (Platform.DIGITAL_OCEAN, True)),
        ("-installer", (Platform.METAL, False)),
    ],
)
def test_installer_image_names(image: str, expected: tuple[Platform, bool]) -> None:
    assert parse_installer_image(image) == expected


def test_installer_image_errors() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_installer_image("imager")
    assert err.value.message == "invalid image: imager"
    with pytest.raises(InvalidProfilePath) as err:
        parse_installer_image("foo-installer")
    assert err.value.message == 'unknown platform: "foo"'


def test_installer_profile() -> None:
    assert installer_profile(Arch.ARM64, secureboot=True) == Profile(
        Arch.ARM64, Platform.METAL, Output(OutputKind.INSTALLER), secureboot=True
    )
    assert installer_profile(Arch.AMD64, platform=Platform.AWS).platform is Platform.AWS
