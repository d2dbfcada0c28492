"""Profile enhancement from a schematic (factory spec §4, imager spec §2.7) and output defaults."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from services.builder.enhance import (
    ENHANCE_ERROR_PREFIX,
    FactorySettings,
    enhance,
    fill_output_defaults,
    required_overlay,
)
from services.builder.enums import Arch, Bootloader, EnrollKeys, ImageFormat, OutputKind
from services.builder.profile import (
    BaseInstaller,
    ExtensionInput,
    ImageOptions,
    ISOOptions,
    OverlayInput,
    Profile,
    SchematicExtension,
    SecureBootInput,
    parse_profile_path,
)
from services.catalog.catalogs import ExtensionEntry, OverlayEntry
from services.catalog.versions import Version, parse
from services.schematic.model import MetaValue, OptionMap, Schematic
from services.schematic.parsing import decode_schematic
from services.shared.errors import InvalidArgument

SCHEMATIC_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
SETTINGS = FactorySettings(secureboot_enabled=True, external_url="https://factory.talos.dev/")
MIB = 1024 * 1024


def ext(name: str) -> ExtensionEntry:
    return ExtensionEntry(name=name, ref=f"ghcr.io/{name}:1.0", digest=f"sha256:{len(name):064x}")


CATALOG = [ext("siderolabs/gvisor"), ext("siderolabs/amd-ucode"), ext("siderolabs/v4l-uvc-drivers")]
OVERLAYS = [
    OverlayEntry(
        name="rpi_generic",
        image="siderolabs/sbc-raspberrypi",
        ref="ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0",
        digest="sha256:849ace01",
    )
]
# `IF:internal/profile/testdata/profiles/rpi_generic.yaml` (factory §4.1).
RPI_PROFILE: dict[str, Any] = yaml.safe_load(
    """
arch: arm64
platform: metal
secureboot: false
output:
  kind: image
  outFormat: .xz
  imageOptions:
    diskSize: 1306525696
    diskFormat: raw
    bootloader: grub
"""
)


def schematic(text: str) -> Schematic:
    return decode_schematic(text.encode())


def run(path: str, version: str, schematic_yaml: str = "{}", **kwargs: Any) -> Profile:
    v = parse(version)
    kwargs.setdefault("settings", SETTINGS)
    kwargs.setdefault("extensions", CATALOG)
    kwargs.setdefault("overlays", OVERLAYS)
    return enhance(parse_profile_path(path, v), schematic(schematic_yaml), v, schematic_id=SCHEMATIC_ID, **kwargs)


def error(path: str, version: str, schematic_yaml: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidArgument) as err:
        run(path, version, schematic_yaml, **kwargs)
    return err.value.message


def test_empty_schematic_metal_iso() -> None:
    p = run("metal-amd64.iso", "1.10.0")
    assert p.version == Version(1, 10, 0)
    assert p.name == "Talos"
    assert p.input.system_extensions == ()
    assert p.input.schematic_extension == SchematicExtension(
        SCHEMATIC_ID, with_extra_info=True, author="Image Factory (https://factory.talos.dev/)"
    )
    assert p.customization.extra_kernel_args == ()
    assert p.output.iso_options is None
    assert p.overlay is None


def test_enterprise_names() -> None:
    p = run("metal-amd64.iso", "1.10.0", settings=FactorySettings(enterprise=True, external_url="https://x"))
    assert p.name == "Talos Enterprise"
    assert p.input.schematic_extension is not None
    assert p.input.schematic_extension.author == "Image Factory Enterprise (https://x)"


def test_schematic_extra_info_from_1_7() -> None:
    for version, expected in (("1.6.9", False), ("1.7.0-alpha.0", True), ("1.7.0", True)):
        ext_ = run("metal-amd64.iso", version).input.schematic_extension
        assert ext_ is not None and ext_.with_extra_info is expected


# --- step 1: embedded configuration -------------------------------------------------------------

EMBEDDED = "customization:\n  embeddedMachineConfiguration: |\n    version: v1alpha1\n"


def test_embedded_config_refused_below_1_12() -> None:
    assert (
        error("metal-amd64.iso", "1.11.5", EMBEDDED)
        == "embedding configuration is not supported for Talos version v1.11.5"
    )
    assert error("installer-amd64.tar", "1.11.99", EMBEDDED).endswith("v1.11.99")
    # Quirks ignore the pre-release part: 1.12.0-alpha.0 counts as 1.12.0.
    assert run("installer-amd64.tar", "1.12.0-alpha.0", EMBEDDED).customization.embedded_machine_configuration


def test_embedded_config_applied_from_1_12() -> None:
    for path in (
        "metal-amd64.iso",
        "metal-amd64.raw.xz",
        "installer-amd64.tar",
        "initramfs-amd64.xz",
        "metal-amd64-uki.efi",
    ):
        p = run(path, "1.12.0", EMBEDDED)
        assert p.customization.embedded_machine_configuration == "version: v1alpha1\n"


def test_embedded_config_ignored_for_cmdline_and_kernel() -> None:
    for path in ("cmdline-metal-amd64", "kernel-amd64"):
        assert run(path, "1.9.0", EMBEDDED).customization.embedded_machine_configuration == ""


# --- step 2: SecureBoot -------------------------------------------------------------------------


def test_secureboot_disabled() -> None:
    assert error("metal-amd64-secureboot.iso", "1.10.0", "{}", settings=FactorySettings()) == "secure boot is disabled"
    # A non-SecureBoot profile does not care.
    run("metal-amd64.iso", "1.10.0", settings=FactorySettings())


def test_secureboot_input_and_well_known_certs() -> None:
    p = run("metal-amd64-secureboot.iso", "1.10.0")
    assert p.input.secureboot == SecureBootInput(include_well_known_certs=False)
    p = run(
        "metal-amd64-secureboot.iso",
        "1.10.0",
        "customization:\n  secureboot:\n    includeWellKnownCertificates: true\n",
    )
    assert p.input.secureboot == SecureBootInput(include_well_known_certs=True)
    assert run("metal-amd64.iso", "1.10.0").input.secureboot is None


def test_enroll_keys() -> None:
    sb = "customization:\n  secureboot:\n    enrollKeys: {}\n"
    iso = run("metal-amd64-secureboot.iso", "1.10.0", sb.format("Force"))
    assert iso.output.iso_options == ISOOptions(sd_boot_enroll_keys=EnrollKeys.FORCE)
    disk = run("metal-amd64-secureboot.raw.zst", "1.10.0", sb.format("off"))
    assert disk.output.image_options is not None
    assert disk.output.image_options.sd_boot_enroll_keys is EnrollKeys.OFF
    # Ignored for other kinds and for non-SecureBoot profiles (even when invalid).
    assert run("metal-amd64-secureboot-uki.efi", "1.10.0", sb.format("manual")).output.iso_options is None
    assert run("metal-amd64.iso", "1.10.0", sb.format("bogus")).output.iso_options is None
    assert error("metal-amd64-secureboot.iso", "1.10.0", sb.format("bogus")) == (
        'invalid secureboot enrollKeys value "bogus": bogus does not belong to SDBootEnrollKeys values'
    )


# --- step 3: overlay gate -----------------------------------------------------------------------

OVERLAY = "overlay:\n  image: siderolabs/sbc-raspberrypi\n  name: rpi_generic\n  options:\n    configTxtAppend: x\n"


@pytest.mark.parametrize("path", ["metal-arm64.raw.xz", "cmdline-metal-arm64", "kernel-arm64", "installer-arm64.tar"])
def test_overlay_gate(path: str) -> None:
    assert error(path, "1.6.7", OVERLAY) == "overlay is not supported for Talos version v1.6.7"


# --- step 4: base installer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "image"),
    [
        ("1.9.5", "siderolabs/installer"),
        ("1.10.0-beta.0", "siderolabs/installer-base"),
        ("1.12.0", "siderolabs/installer-base"),
    ],
)
def test_base_installer(version: str, image: str) -> None:
    p = run("installer-amd64.tar", version)
    assert p.input.base_installer == BaseInstaller(image=image, tag=f"v{version}")
    assert run("metal-amd64.iso", version).input.base_installer is None


# --- step 5: extensions and overlay -------------------------------------------------------------

EXTENSIONS = """customization:
  systemExtensions:
    officialExtensions:
      - siderolabs/amd-ucode
      - siderolabs/v4l-uvc
      - siderolabs/gvisor
"""


def test_extensions_in_schematic_order_with_aliases() -> None:
    p = run("metal-amd64.iso", "1.10.0", EXTENSIONS)
    assert [e.name for e in p.input.system_extensions] == [
        "siderolabs/amd-ucode",
        "siderolabs/v4l-uvc-drivers",
        "siderolabs/gvisor",
    ]
    assert p.input.system_extensions[2] == ExtensionInput(
        "siderolabs/gvisor", "ghcr.io/siderolabs/gvisor:1.0", CATALOG[0].digest
    )
    assert p.input.schematic_extension is not None


def test_missing_extension() -> None:
    text = "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/nope]\n"
    assert (
        error("metal-amd64.iso", "1.10.0", text)
        == 'official extension "siderolabs/nope" is not available for Talos version v1.10.0'
    )
    assert error("metal-amd64.iso", "1.10.0", text, extensions=[]) != ""


@pytest.mark.parametrize("path", ["cmdline-metal-amd64", "kernel-amd64"])
def test_no_extensions_for_cmdline_and_kernel(path: str) -> None:
    p = run(path, "1.10.0", EXTENSIONS + OVERLAY, extensions=[])
    assert p.input.system_extensions == ()
    assert p.input.schematic_extension is None
    assert p.overlay is None


def test_overlay_merge_and_input() -> None:
    v = parse("1.10.0")
    s = schematic(OVERLAY)
    profile = parse_profile_path("metal-arm64.raw.xz", v)
    entry = required_overlay(profile, s, v, OVERLAYS)
    assert entry == OVERLAYS[0]
    p = enhance(
        profile, s, v, schematic_id=SCHEMATIC_ID, settings=SETTINGS, overlays=OVERLAYS, overlay_profile=RPI_PROFILE
    )
    assert p.overlay == OverlayInput(
        name="rpi_generic",
        image="siderolabs/sbc-raspberrypi",
        ref="ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0",
        digest="sha256:849ace01",
        options=OptionMap({"configTxtAppend": "x"}),
    )
    assert p.output.image_options == ImageOptions(
        disk_size=1246 * MIB, disk_format=ImageFormat.RAW, bootloader=Bootloader.GRUB
    )
    assert p.arch is Arch.ARM64 and p.output.out_format.value == ".xz"


def test_overlay_gives_installer_grub_image_options() -> None:
    p = run("installer-arm64.tar", "1.10.0", OVERLAY, overlay_profile=RPI_PROFILE)
    assert p.output.image_options == ImageOptions(bootloader=Bootloader.GRUB)
    assert p.output.kind is OutputKind.INSTALLER


def test_schematic_bootloader_wins_over_overlay() -> None:
    p = run(
        "metal-arm64.raw.xz", "1.10.0", OVERLAY + "customization:\n  bootloader: sd-boot\n", overlay_profile=RPI_PROFILE
    )
    assert p.output.image_options is not None and p.output.image_options.bootloader is Bootloader.SD_BOOT


def test_overlay_not_found() -> None:
    text = OVERLAY.replace("rpi_generic", "nope")
    assert error("metal-arm64.raw.xz", "1.10.0", text, overlay_profile=RPI_PROFILE) == (
        'official overlay "nope" is not available for Talos version v1.10.0'
    )
    v = parse("1.10.0")
    with pytest.raises(InvalidArgument):
        required_overlay(parse_profile_path("metal-arm64.raw.xz", v), schematic(text), v, OVERLAYS)


def test_overlay_profile_must_be_provided() -> None:
    with pytest.raises(ValueError, match="required_overlay"):
        run("metal-arm64.raw.xz", "1.10.0", OVERLAY)


def test_required_overlay_none() -> None:
    v = parse("1.10.0")
    assert required_overlay(parse_profile_path("metal-arm64.raw.xz", v), Schematic(), v, OVERLAYS) is None
    assert required_overlay(parse_profile_path("cmdline-metal-arm64", v), schematic(OVERLAY), v, OVERLAYS) is None


# --- step 6: kernel args, META, bootloader, sector size -----------------------------------------

CUSTOM = """customization:
  extraKernelArgs: [nolapic, nomodeset]
  meta:
    - key: 10
      value: hello
  bootloader: grub
  diskImage:
    sectorSize: 4096
"""


@pytest.mark.parametrize(
    ("path", "version", "args", "meta"),
    [
        ("metal-amd64.iso", "1.9.0", True, True),
        ("metal-amd64.raw.xz", "1.9.0", True, True),
        ("cmdline-metal-amd64", "1.9.0", True, True),
        ("kernel-amd64", "1.12.0", False, False),
        ("initramfs-amd64.xz", "1.12.0", False, False),
        ("installer-amd64.tar", "1.9.0", False, False),
        ("installer-amd64.tar", "1.10.0", True, False),
        ("metal-amd64-uki.efi", "1.9.0", False, False),
        ("metal-amd64-uki.efi", "1.10.0-alpha.1", True, False),
        ("installer-amd64-secureboot.tar", "1.9.0", True, False),
        ("metal-amd64-secureboot-uki.efi", "1.9.0", True, False),
    ],
)
def test_kernel_args_and_meta_per_kind(path: str, version: str, args: bool, meta: bool) -> None:
    p = run(path, version, CUSTOM)
    assert p.customization.extra_kernel_args == (("nolapic", "nomodeset") if args else ())
    assert p.customization.meta_contents == ((MetaValue(10, "hello"),) if meta else ())


def test_bootloader_and_sector_size() -> None:
    iso = run("metal-amd64.iso", "1.12.0", CUSTOM)
    assert iso.output.iso_options == ISOOptions(bootloader=Bootloader.GRUB)
    disk = run("metal-amd64.raw.xz", "1.12.0", CUSTOM)
    assert disk.output.image_options is not None
    assert (disk.output.image_options.bootloader, disk.output.image_options.disk_sector_size) == (Bootloader.GRUB, 4096)
    uki = run("metal-amd64-uki.efi", "1.12.0", CUSTOM)
    assert uki.output.iso_options is None and uki.output.image_options is None
    plain = run("metal-amd64.raw.xz", "1.12.0")
    assert plain.output.image_options is not None
    assert (plain.output.image_options.bootloader, plain.output.image_options.disk_sector_size) == (Bootloader.NONE, 0)


def test_error_prefix() -> None:
    assert ENHANCE_ERROR_PREFIX == "error enhancing profile from schematic: "


# --- Output.FillDefaults (imager §2.2 step 4, §2.4 table) ---------------------------------------


@pytest.mark.parametrize(
    ("path", "version", "bootloader", "size_mib"),
    [
        ("metal-amd64.raw.zst", "1.9.0", Bootloader.GRUB, 1246),
        ("metal-amd64.raw.zst", "1.10.0", Bootloader.DUAL_BOOT, 2247),
        ("metal-amd64.raw.zst", "1.11.0", Bootloader.DUAL_BOOT, 4247),
        ("metal-arm64.raw.zst", "1.9.0", Bootloader.GRUB, 1246),
        ("metal-arm64.raw.zst", "1.10.0", Bootloader.SD_BOOT, 1246),
        ("metal-arm64.raw.zst", "1.15.0", Bootloader.SD_BOOT, 2246),
        ("aws-amd64.raw.xz", "1.9.0", Bootloader.GRUB, 8192),
        ("aws-amd64.raw.xz", "1.10.0", Bootloader.DUAL_BOOT, 9193),
        ("aws-amd64.raw.xz", "1.12.0", Bootloader.DUAL_BOOT, 11193),
        ("aws-arm64.raw.xz", "1.10.0", Bootloader.SD_BOOT, 8192),
        ("aws-arm64.raw.xz", "1.11.0", Bootloader.SD_BOOT, 9192),
        ("exoscale-amd64.qcow2", "1.9.0", Bootloader.GRUB, 10240),
        ("exoscale-amd64.qcow2", "1.10.0", Bootloader.DUAL_BOOT, 11241),
        ("exoscale-amd64.qcow2", "1.11.0", Bootloader.DUAL_BOOT, 13241),
        ("exoscale-arm64.qcow2", "1.11.0", Bootloader.SD_BOOT, 11240),
        ("metal-amd64-secureboot.raw.zst", "1.9.0", Bootloader.SD_BOOT, 1246),
        ("metal-amd64-secureboot.raw.zst", "1.11.0", Bootloader.SD_BOOT, 2246),
        ("azure-arm64-secureboot.vhd", "1.12.0", Bootloader.SD_BOOT, 9192),
    ],
)
def test_fill_output_defaults_disk(path: str, version: str, bootloader: Bootloader, size_mib: int) -> None:
    p = fill_output_defaults(run(path, version))
    assert p.output.image_options is not None
    assert (p.output.image_options.bootloader, p.output.image_options.disk_size) == (bootloader, size_mib * MIB)


@pytest.mark.parametrize(
    ("path", "version", "expected"),
    [
        ("metal-amd64.iso", "1.11.0", None),
        ("metal-amd64.iso", "1.12.0", ISOOptions(bootloader=Bootloader.DUAL_BOOT)),
        ("metal-arm64.iso", "1.12.0", ISOOptions(bootloader=Bootloader.SD_BOOT)),
        ("metal-amd64-secureboot.iso", "1.12.0", ISOOptions(bootloader=Bootloader.SD_BOOT)),
    ],
)
def test_fill_output_defaults_iso(path: str, version: str, expected: ISOOptions | None) -> None:
    assert fill_output_defaults(run(path, version)).output.iso_options == expected


def test_fill_output_defaults_keeps_schematic_bootloader() -> None:
    p = fill_output_defaults(run("metal-amd64.raw.xz", "1.12.0", "customization:\n  bootloader: grub\n"))
    assert p.output.image_options is not None
    assert (p.output.image_options.bootloader, p.output.image_options.disk_size) == (Bootloader.GRUB, 2246 * MIB)


def test_fill_output_defaults_needs_version() -> None:
    with pytest.raises(ValueError, match="enhance"):
        fill_output_defaults(parse_profile_path("metal-amd64.iso", Version(1, 12, 0)))
