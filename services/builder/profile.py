"""The build profile: what one asset is (imager spec §2.1), and `:path` → profile (factory spec §3).

`Profile` mirrors the Talos imager profile as far as the factory fills it. Where Talos stores file
system paths (`ociPath`, `tarballPath`, `input.kernel.path`) we store *what* the input is (a catalog
reference, a schematic ID); the caller resolves it to bytes and passes their digests to `asset_key`.
Everything is frozen: `enhance` and `parse_profile_path` return new values. The StrEnums live in
`enums.py` (so the tables can use them) and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from services.builder.enums import (
    ARCH_ALIASES,
    PROFILE_PATH_ERROR_PREFIX,
    Arch,
    Bootloader,
    Compression,
    EnrollKeys,
    ImageFormat,
    InvalidProfilePath,
    OutputKind,
    Platform,
    go_quote,
)
from services.builder.platforms import DEFAULT_RAW_DISK_SIZE, DISK_DEFAULTS
from services.catalog.versions import Version
from services.schematic.model import EMPTY_OPTIONS, MetaValue, OptionMap
from services.shared.errors import InvalidArgument

__all__ = [
    "ARCH_ALIASES",
    "PROFILE_PATH_ERROR_PREFIX",
    "Arch",
    "BaseInstaller",
    "Bootloader",
    "Compression",
    "Customization",
    "EnrollKeys",
    "ExtensionInput",
    "ISOOptions",
    "ImageFormat",
    "ImageOptions",
    "Input",
    "InvalidProfilePath",
    "Output",
    "OutputKind",
    "OverlayInput",
    "Platform",
    "Profile",
    "SchematicExtension",
    "SecureBootInput",
    "installer_profile",
    "parse_installer_image",
    "parse_profile_path",
]


@dataclass(frozen=True)
class ImageOptions:
    # Zero values exist only on non-image kinds whose options an overlay profile allocated (§4.1):
    # Talos' `diskSize: 0`, `diskFormat: unknown`.
    disk_size: int = 0
    disk_format: ImageFormat | None = None
    disk_format_options: str = ""
    disk_sector_size: int = 0
    bootloader: Bootloader = Bootloader.NONE
    sd_boot_enroll_keys: EnrollKeys = EnrollKeys.IF_SAFE


@dataclass(frozen=True)
class ISOOptions:
    sd_boot_enroll_keys: EnrollKeys = EnrollKeys.IF_SAFE
    bootloader: Bootloader = Bootloader.NONE


@dataclass(frozen=True)
class Output:
    kind: OutputKind
    out_format: Compression = Compression.RAW
    image_options: ImageOptions | None = None
    iso_options: ISOOptions | None = None


@dataclass(frozen=True)
class Customization:
    extra_kernel_args: tuple[str, ...] = ()
    meta_contents: tuple[MetaValue, ...] = ()
    embedded_machine_configuration: str = ""


@dataclass(frozen=True)
class BaseInstaller:
    """`siderolabs/installer-base` (≥1.10) or `siderolabs/installer` at the profile's tag (factory §4 step 4)."""

    image: str
    tag: str


@dataclass(frozen=True)
class ExtensionInput:
    """An official extension as the catalog lists it (factory §7.3); pulled for the profile arch."""

    name: str  # catalog repository path, after the alias table
    ref: str
    digest: str


@dataclass(frozen=True)
class SchematicExtension:
    """The generated `schematic` virtual extension (factory §7.6); always the last extension."""

    schematic_id: str
    with_extra_info: bool  # Talos ≥1.7: the manifest carries the schematic YAML
    author: str  # `Image Factory (<external URL>)`


@dataclass(frozen=True)
class SecureBootInput:
    """Signing material lives in the signer; only the schematic's choice is part of the profile."""

    include_well_known_certs: bool = False


@dataclass(frozen=True)
class Input:
    base_installer: BaseInstaller | None = None
    system_extensions: tuple[ExtensionInput, ...] = ()
    schematic_extension: SchematicExtension | None = None
    secureboot: SecureBootInput | None = None


@dataclass(frozen=True)
class OverlayInput:
    """An overlay from the catalog (factory §7.4): pulled for the host arch (its installer runs) and the
    target arch (its artifacts are packed), imager §1.5."""

    name: str
    image: str
    ref: str
    digest: str
    options: OptionMap = EMPTY_OPTIONS


@dataclass(frozen=True)
class Profile:
    arch: Arch
    platform: Platform
    output: Output
    secureboot: bool = False
    version: Version | None = None  # set by `enhance`
    name: str = ""  # `Talos` / `Talos Enterprise`, set by `enhance`
    customization: Customization = field(default_factory=Customization)
    input: Input = field(default_factory=Input)
    overlay: OverlayInput | None = None

    def output_name(self) -> str:
        """The imager's output file name (imager §2.6), e.g. `gcp-amd64.raw.tar.gz`."""
        sb = "-secureboot" if self.secureboot else ""
        base = f"{self.platform}-{self.arch}{sb}"
        match self.output.kind:
            case OutputKind.ISO:
                return f"{base}.iso"
            case OutputKind.IMAGE:
                options = self.output.image_options
                disk = options.disk_format if options and options.disk_format else ImageFormat.RAW
                return f"{base}{disk.extension}{self.output.out_format.suffix}"
            case OutputKind.INSTALLER:
                return f"installer-{self.arch}{sb}.tar"
            case OutputKind.KERNEL:
                return f"kernel-{self.arch}"
            case OutputKind.INITRAMFS:
                return f"initramfs-{base}.xz"
            case OutputKind.UKI:
                return f"{base}-uki.efi"
            case OutputKind.CMDLINE:
                return f"cmdline-{base}"


# Keys of Talos `profile.Default` that are not platforms. As a disk-image "platform" (`iso-amd64.raw.xz`,
# `installer-amd64.raw`) the reference dereferences their nil `imageOptions` and drops the connection
# (factory §3, §18.7); we answer 400 `invalid profile path`.
_NON_PLATFORM_DEFAULTS: Final = frozenset(
    {
        "iso",
        "secureboot-iso",
        "metal-4k",
        "metal-uki",
        "secureboot-metal-uki",
        "secureboot-metal",
        "installer",
        "secureboot-installer",
        "secureboot-azure",
        "secureboot-cloudstack",
        "secureboot-nocloud",
        "secureboot-opennebula",
        "secureboot-openstack",
        "secureboot-vmware",
    }
)

_SECUREBOOT: Final = "-secureboot"
# Rule 8 step 2: the order matters (`.tar.gz` before `.gz`).
_COMPRESSIONS: Final = (Compression.TAR_GZ, Compression.GZ, Compression.XZ, Compression.ZST)
_QCOW2_OPTIONS: Final = "cluster_size=8k"


def parse_profile_path(path: str, version: Version) -> Profile:
    """`GET /image/<id>/<version>/<path>` → profile; rules tried in order, first match wins (factory §3).

    `version` is accepted for parity with `ParseFromPath`; at the reference's HEAD no rule uses it
    (platform minimum versions are UI hints, not enforced, see `platforms.PLATFORMS`).
    """
    del version
    if (rest := _cut_prefix(path, "kernel-")) is not None:  # rule 1
        return Profile(Arch.parse(rest), Platform.METAL, Output(OutputKind.KERNEL))
    if (rest := _cut_prefix(path, "cmdline-")) is not None:  # rule 2
        return _with_platform_arch(rest, Output(OutputKind.CMDLINE))
    if (rest := _cut_prefix(path, "initramfs-")) is not None and rest.endswith(".xz"):  # rule 3
        return Profile(Arch.parse(rest.removesuffix(".xz")), Platform.METAL, Output(OutputKind.INITRAMFS))
    if (rest := _cut_suffix(path, ".iso")) is not None:  # rule 4
        return _with_platform_arch(rest, Output(OutputKind.ISO))
    if (rest := _cut_suffix(path, "-uki.efi")) is not None:  # rule 5
        return _with_platform_arch(rest, Output(OutputKind.UKI))
    if (rest := _cut_prefix(path, "installer-")) is not None and rest.endswith(".tar"):  # rule 6
        rest = rest.removesuffix(".tar")
        secureboot = rest.endswith(_SECUREBOOT)
        arch = Arch.parse(rest.removesuffix(_SECUREBOOT))
        return Profile(arch, Platform.METAL, Output(OutputKind.INSTALLER), secureboot=secureboot)
    if "-installer-" in path and path.endswith(".tar"):  # rule 7
        platform, _, rest = path.removesuffix(".tar").partition("-installer-")
        return _with_platform_arch(f"{platform}-{rest}", Output(OutputKind.INSTALLER))
    return _parse_disk_image(path)  # rule 8


def _parse_disk_image(path: str) -> Profile:
    out_format = Compression.RAW
    for compression in _COMPRESSIONS:
        if (rest := _cut_suffix(path, compression.value)) is not None:
            path, out_format = rest, compression
            break
    disk_format = next((f for f in ImageFormat if path.endswith(f.extension)), None)
    if disk_format is None:
        # The message shows the path with the compression suffix already cut (`metal-amd64.ssd`).
        raise InvalidProfilePath(f"invalid profile path: {go_quote(path)}")
    platform_name, arch, secureboot = _split_platform_arch(path.removesuffix(disk_format.extension))
    if platform_name in _NON_PLATFORM_DEFAULTS:
        raise InvalidProfilePath(f"invalid profile path: {go_quote(path)}")
    platform = Platform.parse(platform_name)
    options = ImageOptions(
        disk_size=DEFAULT_RAW_DISK_SIZE,
        disk_format=disk_format,
        disk_format_options=_QCOW2_OPTIONS if disk_format is ImageFormat.QCOW2 else "",
    )
    # Rule 8.5: only the size and the format options come from the platform's built-in profile; its
    # options win even over the requested format's (`azure-amd64.raw` gets `subformat=fixed,force_size`).
    if (defaults := DISK_DEFAULTS.get(platform)) is not None:
        options = ImageOptions(
            disk_size=defaults.disk_size or options.disk_size,
            disk_format=disk_format,
            disk_format_options=defaults.disk_format_options or options.disk_format_options,
        )
    output = Output(OutputKind.IMAGE, out_format, image_options=options)
    return Profile(arch, platform, output, secureboot=secureboot)


def _with_platform_arch(text: str, output: Output) -> Profile:
    platform_name, arch, secureboot = _split_platform_arch(text)
    return Profile(arch, Platform.parse(platform_name), output, secureboot=secureboot)


def _split_platform_arch(text: str) -> tuple[str, Arch, bool]:
    """Go `parsePlatformArch`: `[platform]-[arch][-secureboot]`, `digital-ocean` special-cased.

    The architecture is checked before the platform so the reference's texts stay exact
    (`metal-rpi_generic-arm64` → `invalid architecture: "rpi_generic-arm64"`).
    """
    secureboot = text.endswith(_SECUREBOOT)
    text = text.removesuffix(_SECUREBOOT)
    platform, dash, rest = text.partition("-")
    if not dash:
        raise InvalidProfilePath(f"invalid platform-arch: {go_quote(text)}")
    if platform == "digital" and rest.startswith("ocean-"):
        platform, rest = "digital-ocean", rest.removeprefix("ocean-")
    return platform, Arch.parse(rest), secureboot


def installer_profile(arch: Arch, *, secureboot: bool = False, platform: Platform = Platform.METAL) -> Profile:
    """The registry frontend's installer profile (factory §3 `InstallerProfile`, §9.2 step 7a)."""
    return Profile(arch, platform, Output(OutputKind.INSTALLER), secureboot=secureboot)


def parse_installer_image(image: str) -> tuple[Platform, bool]:
    """Registry image name → (platform, secureboot) (factory §2.13 `getRequestedImage`)."""
    if image == "installer":
        return Platform.METAL, False
    if image == "installer-secureboot":
        return Platform.METAL, True
    for suffix, secureboot in (("-installer-secureboot", True), ("-installer", False)):
        if (platform := _cut_suffix(image, suffix)) is not None:
            # An empty platform is defaulted to metal by `InstallerProfile`; an unknown one fails the
            # reference's build with 500, we refuse it up front.
            return (Platform.parse(platform) if platform else Platform.METAL), secureboot
    raise InvalidArgument(f"invalid image: {image}")


def _cut_prefix(text: str, prefix: str) -> str | None:
    return text[len(prefix) :] if text.startswith(prefix) else None


def _cut_suffix(text: str, suffix: str) -> str | None:
    return text[: len(text) - len(suffix)] if text.endswith(suffix) else None
