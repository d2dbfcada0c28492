"""StrEnums of the build profile (imager spec §2.1) and the path-parsing error (factory spec §3).

Kept apart from `profile.py` so the platform tables (`platforms.py`) can use them without an import
cycle; `profile.py` re-exports everything here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from services.shared.errors import InvalidArgument

# The HTTP handler (`IF:internal/frontend/http/image.go`, factory §2.6 step 4), not `ParseFromPath`,
# adds this prefix; the gateway puts it in front of every `InvalidProfilePath` message.
PROFILE_PATH_ERROR_PREFIX: Final = "error parsing profile from path: "


class InvalidProfilePath(InvalidArgument):
    """`:path` names no asset (factory §3); 400 with `PROFILE_PATH_ERROR_PREFIX`."""

    reason = "INVALID_PROFILE_PATH"


class Arch(StrEnum):
    AMD64 = "amd64"
    ARM64 = "arm64"

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Go `parseArch` (factory §3): `x86_64` and `i386` mean amd64, nothing else is accepted."""
        arch = ARCH_ALIASES.get(text)
        if arch is None:
            raise InvalidProfilePath(f"invalid architecture: {go_quote(text)}")
        return arch

    def efi_boot_name(self) -> str:
        """The removable-media loader name in `EFI/BOOT/` (UEFI spec, imager §5)."""
        return "BOOTX64.EFI" if self is Arch.AMD64 else "BOOTAA64.EFI"

    def uname_machine(self) -> str:
        return "x86_64" if self is Arch.AMD64 else "aarch64"


# Factory §3 `parseArch`. `aarch64` is *not* an alias there; it answers `invalid architecture`.
ARCH_ALIASES: Final[dict[str, Arch]] = {
    "amd64": Arch.AMD64,
    "arm64": Arch.ARM64,
    "x86_64": Arch.AMD64,
    "i386": Arch.AMD64,
}


class Platform(StrEnum):
    """Platforms the Talos imager accepts (factory §3.1, `newPlatform`); anything else is rejected."""

    AKAMAI = "akamai"
    ALIBABACLOUD = "alibabacloud"
    AWS = "aws"
    AZURE = "azure"
    CLOUDSTACK = "cloudstack"
    CONTAINER = "container"
    DIGITAL_OCEAN = "digital-ocean"
    EQUINIX_METAL = "equinixMetal"
    EXOSCALE = "exoscale"
    GCP = "gcp"
    HCLOUD = "hcloud"
    METAL = "metal"
    NOCLOUD = "nocloud"
    OPENNEBULA = "opennebula"
    OPENSTACK = "openstack"
    ORACLE = "oracle"
    PACKET = "packet"  # old name of equinixMetal, still accepted by `newPlatform`
    SCALEWAY = "scaleway"
    UPCLOUD = "upcloud"
    VMWARE = "vmware"
    VULTR = "vultr"

    @classmethod
    def parse(cls, text: str) -> Platform:
        try:
            return cls(text)
        except ValueError:
            # The reference fails late, inside the imager, with a 500 (factory §18.8); we answer 400.
            raise InvalidProfilePath(f"unknown platform: {go_quote(text)}") from None

    @property
    def talos_name(self) -> str:
        """The value of `talos.platform=` (imager §3.2: the platform's `Name()`)."""
        return Platform.EQUINIX_METAL.value if self is Platform.PACKET else self.value


class OutputKind(StrEnum):
    ISO = "iso"
    IMAGE = "image"
    INSTALLER = "installer"
    KERNEL = "kernel"
    INITRAMFS = "initramfs"
    UKI = "uki"
    CMDLINE = "cmdline"

    @property
    def takes_extensions(self) -> bool:
        """Extensions, the schematic extension and embedded config (factory §4 steps 1 and 5)."""
        return self not in (OutputKind.CMDLINE, OutputKind.KERNEL)

    @property
    def meta_on_cmdline(self) -> bool:
        """META travels as `talos.environment=` except for disk images (imager §8.4)."""
        return self is not OutputKind.IMAGE


class Compression(StrEnum):
    """Talos `OutFormat`: post-processing of the output file (imager §7.9)."""

    RAW = "raw"
    TAR_GZ = ".tar.gz"
    XZ = ".xz"
    GZ = ".gz"
    ZST = ".zst"

    @property
    def suffix(self) -> str:
        return "" if self is Compression.RAW else self.value


class ImageFormat(StrEnum):
    """Talos `DiskFormat` (imager §7.8)."""

    RAW = "raw"
    QCOW2 = "qcow2"
    VHD = "vhd"
    OVA = "ova"

    @property
    def extension(self) -> str:
        return "." + self.value

    def qemu_img_format(self) -> str | None:
        """`qemu-img convert -O` value; None when no conversion runs (raw)."""
        return {ImageFormat.RAW: None, ImageFormat.QCOW2: "qcow2", ImageFormat.VHD: "vpc", ImageFormat.OVA: "vmdk"}[
            self
        ]


class Bootloader(StrEnum):
    """Talos `BootloaderKind`; `none` is the zero value ("choose the default", imager §2.2)."""

    NONE = "none"
    DUAL_BOOT = "dual-boot"
    SD_BOOT = "sd-boot"
    GRUB = "grub"

    @property
    def has_grub(self) -> bool:
        return self in (Bootloader.GRUB, Bootloader.DUAL_BOOT)

    @property
    def has_sd_boot(self) -> bool:
        return self in (Bootloader.SD_BOOT, Bootloader.DUAL_BOOT)


class EnrollKeys(StrEnum):
    """Talos `SDBootEnrollKeys`; `if-safe` is the zero value."""

    IF_SAFE = "if-safe"
    MANUAL = "manual"
    FORCE = "force"
    OFF = "off"

    @classmethod
    def parse(cls, text: str) -> EnrollKeys:
        """Case-insensitive, with the reference's error text (factory §4 step 2)."""
        try:
            return cls(text.lower())
        except ValueError:
            message = f"invalid secureboot enrollKeys value {go_quote(text)}"
            raise InvalidArgument(f"{message}: {text} does not belong to SDBootEnrollKeys values") from None


def go_quote(text: str) -> str:
    """Go `%q` for the printable text seen in paths; other runes use Go's escapes."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
