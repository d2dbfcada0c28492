"""ISO images: GRUB (BIOS+UEFI), UEFI-only systemd-boot, and hybrid (imager spec §5.1-§5.6, §13).

Every ISO is reproducible: the scratch tree is touched to SOURCE_DATE_EPOCH, FAT images use `--invariant`,
xorriso gets fixed dates and UUIDs (§5.5), and the one random value Debian's grub-mkrescue leaves behind (the
serial of its EFI El Torito FAT image) is pinned afterwards. META and embedded config travel in the cmdline and
the initramfs (§5.6), so nothing here writes them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from services.builder.steps import fat, grub, xorriso
from services.builder.steps.xorriso import EFIBOOT_IMG, IsoIdentity

_EFI_BOOT_NAMES = {"amd64": "BOOTX64.EFI", "arm64": "BOOTAA64.EFI"}
_ENROLL_MODES = ("off", "manual", "if-safe", "force")
_RANDOM_SEED = "loader/random-seed"


class IsoKind(StrEnum):
    GRUB = "grub"  # §5.2, grub-mkrescue: BIOS + UEFI GRUB
    UEFI = "uefi"  # §5.3, xorrisofs: sd-boot only
    HYBRID = "hybrid"  # §5.4, grub-mkrescue: BIOS GRUB + UEFI sd-boot


_ISO_BY_BOOTLOADER = {"dual-boot": IsoKind.HYBRID, "sd-boot": IsoKind.UEFI, "grub": IsoKind.GRUB}


def select_iso_kind(
    *, secure_boot: bool, iso_supports_bootloader: bool, use_sdboot_for_uefi: bool, bootloader: str
) -> IsoKind:
    """§5.1, evaluated in order. `iso_supports_bootloader` = ISOSupportsSettingBootloader (≥1.12),
    `use_sdboot_for_uefi` = UseSDBootForUEFI (≥1.10), `bootloader` = the resolved `isoOptions.bootloader`
    (`dual-boot`, `sd-boot` or `grub`; a `builder.enums.Bootloader` works too); it only counts from 1.12."""
    if secure_boot:
        return IsoKind.UEFI
    if iso_supports_bootloader:
        if bootloader not in _ISO_BY_BOOTLOADER:
            raise ValueError(f"ISO bootloader must be one of {', '.join(_ISO_BY_BOOTLOADER)}, not {bootloader!r}")
        return _ISO_BY_BOOTLOADER[bootloader]
    return IsoKind.HYBRID if use_sdboot_for_uefi else IsoKind.GRUB


@dataclass(frozen=True)
class GrubPayload:
    """§5.2 inputs: kernel, rebuilt initramfs, cmdline (META included, §5.6), reset entry from 1.4."""

    kernel: Path
    initramfs: Path
    cmdline: str
    reset_option: bool = True


@dataclass(frozen=True)
class SdBootPayload:
    """§5.3 inputs. `extra_files` maps ISO/ESP paths to files (Secure Boot: `EFI/keys/uki-signing-cert.der`,
    `loader/keys/auto/{PK,KEK,db}.auth`)."""

    sdboot: Path
    uki: Path
    version: str
    arch: str = "amd64"
    secure_boot_enroll: str = "off"
    extra_files: tuple[tuple[str, Path], ...] = ()

    def __post_init__(self) -> None:
        if self.arch not in _EFI_BOOT_NAMES:
            raise ValueError(f"unsupported UEFI architecture {self.arch!r}")
        if self.secure_boot_enroll not in _ENROLL_MODES:
            raise ValueError(f"secure-boot-enroll must be one of {', '.join(_ENROLL_MODES)}")
        if not self.version or "/" in self.version:
            raise ValueError(f"invalid version {self.version!r} for EFI/Linux/Talos-<version>.efi")
        for rel, _ in self.extra_files:
            parts = rel.split("/")
            if rel.startswith("/") or ".." in parts or "" in parts or parts[0] not in ("EFI", "loader"):
                raise ValueError(f"extra file {rel!r} must be a relative path under EFI/ or loader/")


@dataclass(frozen=True)
class IsoOptions:
    kind: IsoKind
    identity: IsoIdentity
    grub: GrubPayload | None = None
    sdboot: SdBootPayload | None = None
    image_cache: Path | None = None  # extracted image cache, copied to /imagecache (§5.1)

    def __post_init__(self) -> None:
        needs_grub, needs_sdboot = self.kind is not IsoKind.UEFI, self.kind is not IsoKind.GRUB
        if needs_grub != (self.grub is not None):
            raise ValueError(f"{self.kind} ISO {'needs' if needs_grub else 'takes no'} GRUB payload")
        if needs_sdboot != (self.sdboot is not None):
            raise ValueError(f"{self.kind} ISO {'needs' if needs_sdboot else 'takes no'} sd-boot payload")


def loader_conf(secure_boot_enroll: str) -> str:
    """§5.3 `loader/loader.conf` (ends with a newline)."""
    return f"# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll {secure_boot_enroll}\n"


def uefi_tree(payload: SdBootPayload) -> dict[str, Path | bytes]:
    """§5.3 step 3: ISO/ESP path → source file or content."""
    tree: dict[str, Path | bytes] = {
        f"EFI/BOOT/{_EFI_BOOT_NAMES[payload.arch]}": payload.sdboot,
        f"EFI/Linux/Talos-{payload.version}.efi": payload.uki,
        "loader/loader.conf": loader_conf(payload.secure_boot_enroll).encode(),
        _RANDOM_SEED: bytes(32),
    }
    tree.update(payload.extra_files)
    return tree


def grub_tree(payload: GrubPayload) -> dict[str, Path | bytes]:
    """§5.2 scratch tree."""
    return {
        "boot/vmlinuz": payload.kernel,
        "boot/initramfs.xz": payload.initramfs,
        "boot/grub/grub.cfg": grub.iso_grub_cfg(payload.cmdline, reset_option=payload.reset_option).encode(),
    }


def write_tree(root: Path, tree: dict[str, Path | bytes]) -> None:
    """Copy/write files (blocking). Modes are fixed (dirs 0755, files 0644, random-seed 0444) so the ISO's Rock
    Ridge attributes do not depend on the umask."""
    for rel, source in sorted(tree.items()):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            dest.write_bytes(source)
        else:
            shutil.copyfile(source, dest)
        dest.chmod(0o444 if rel == _RANDOM_SEED else 0o644)
        for parent in Path(rel).parents:
            (root / parent).chmod(0o755)


def touch_tree(root: Path, epoch: int) -> None:
    """Set atime/mtime of everything under `root` (root included) to SOURCE_DATE_EPOCH (§5.2, §5.3 step 4)."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


async def build_iso(options: IsoOptions, out: Path, workdir: Path) -> None:
    """Build the ISO of `options.kind` into `out`, using `workdir` (empty, build-private) for scratch."""
    scratch = workdir / "iso"
    epoch = options.identity.source_date_epoch
    tree: dict[str, Path | bytes] = {}
    if options.grub is not None:
        tree |= grub_tree(options.grub)
    if options.sdboot is not None:
        tree |= uefi_tree(options.sdboot)
    await asyncio.to_thread(_prepare, scratch, tree, options.image_cache, epoch)
    if options.sdboot is not None:
        await _make_efiboot(scratch, options.sdboot, epoch)
    if options.kind is IsoKind.UEFI:
        await xorriso.run_xorrisofs(xorriso.xorrisofs_uefi_argv(scratch, out, options.identity), options.identity)
    elif options.kind is IsoKind.HYBRID:
        await grub.run_grub_mkrescue(grub.mkrescue_hybrid_argv(scratch, out, options.identity), options.identity)
    else:
        await grub.run_grub_mkrescue(grub.mkrescue_grub_argv(scratch, out, options.identity), options.identity)
        await asyncio.to_thread(pin_grub_efi_serial, out, epoch)


def _prepare(scratch: Path, tree: dict[str, Path | bytes], image_cache: Path | None, epoch: int) -> None:
    scratch.mkdir(mode=0o755)
    if image_cache is not None:
        shutil.copytree(image_cache, scratch / "imagecache", symlinks=True)
    write_tree(scratch, tree)
    touch_tree(scratch, epoch)


async def _make_efiboot(scratch: Path, payload: SdBootPayload, epoch: int) -> None:
    """§5.3 steps 1-4: `efiboot.img` holding the EFI/ and loader/ trees, random-seed read-only."""
    size = fat.efiboot_size(payload.sdboot.stat().st_size, payload.uki.stat().st_size)
    spec = fat.FatSpec(label="EFI", size=size, sectors_per_cluster=fat.sectors_per_cluster(size))
    image = scratch / EFIBOOT_IMG
    await fat.make_fat_image(spec, image, scratch, ["EFI", "loader"], source_date_epoch=epoch, readonly=[_RANDOM_SEED])


def pin_grub_efi_serial(iso: Path, epoch: int) -> None:
    """Give grub-mkrescue's EFI El Torito FAT image the serial Talos' patched grub-mkrescue would
    (GRUB_FAT_SERIAL_NUMBER = uint32 SOURCE_DATE_EPOCH, §5.5); Debian's mformat picks a random one."""
    for entry in xorriso.eltorito_entries(iso):
        if entry.platform == 0xEF:
            fat.set_volume_serial(iso, epoch, offset=entry.lba * 2048)
