"""Bootloader staging for disk images: GRUB (imager spec §7.4), systemd-boot (§7.5), dual-boot (§7.6).

Staging fills a scratch directory `M` the way Talos' image mode does: `M/boot` becomes the BOOT (XFS)
partition, `M/EFI` the ESP, `M/core.img` + `M/boot.img` are GRUB's BIOS stages. Nothing runs `grub-install`
(it wants a block device): `grub-mkimage` builds the images and `install_bios` writes them at the offsets the
GPT gives, with the blocklist patch of §7.4 step 6.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.builder.enums import Arch
from services.builder.steps.gpt import GptLayout
from services.builder.steps.grub import grub_quote
from services.builder.steps.pe import read_pe
from services.shared.tools import run_tool

GRUB_MODULES: Final = (
    "part_gpt", "ext2", "fat", "xfs", "normal", "configfile", "linux", "boot", "search", "search_fs_uuid",
    "search_fs_file", "ls", "cat", "echo", "test", "help", "reboot", "halt", "all_video",
)  # fmt: skip
BIOS_MODULES: Final = ("biosdisk", "part_msdos")
GRUB_PREFIX: Final = "(hd0,gpt3)/grub"  # EFI, BIOS, BOOT: BOOT is always partition 3
BOOT_IMG: Final = Path("/usr/lib/grub/i386-pc/boot.img")
EFI_PLATFORMS: Final = {Arch.AMD64: "x86_64-efi", Arch.ARM64: "arm64-efi"}
EFI_BOOT_NAMES: Final = {Arch.AMD64: "BOOTX64.efi", Arch.ARM64: "BOOTAA64.efi"}  # Talos' spelling (§7.3)
# GRUB's include/grub/i386/pc/boot.h and grub-install's GPT handling (§7.4 step 6).
BOOT_IMG_KERNEL_SECTOR: Final = 0x5C
BOOT_IMG_JUMP: Final = 0x66
CORE_IMG_BLOCKLIST: Final = 0x1F4
MBR_CODE_SIZE: Final = 446  # the partition table (446-511) stays intact
ENROLL_MODES: Final = ("if-safe", "manual", "force")
_WIPE_MAINTENANCE: Final = "talos.experimental.wipe=system:EPHEMERAL,STATE"
_TIMEOUT: Final = 300


def disk_grub_cfg(cmdline: str, *, name: str, version: str, reset_option: bool) -> str:
    """§7.4 step 2: entry `A - <name> <version>`, two-space indent, reset entry from 1.4 (no blank lines
    between entries, as Talos' template trims them)."""
    if "\n" in cmdline:
        raise ValueError("the kernel command line must be one line")
    title = f"A - {name} {version}"
    quoted = grub_quote(cmdline)
    head = (
        f'set default="{title}"\n\nset timeout=3\n\ninsmod all_video\n\n'
        "terminal_input console\nterminal_output console\n\n"
    )
    entries = [(title, quoted)]
    if reset_option:
        entries.append(("Reset Talos installation and return to maintenance mode", f"{quoted} {_WIPE_MAINTENANCE}"))
    return head + "".join(
        f'menuentry "{entry}" {{\n  set gfxmode=auto\n  set gfxpayload=text\n'
        f"  linux /A/vmlinuz {args}\n  initrd /A/initramfs.xz\n}}\n"
        for entry, args in entries
    )


def mkimage_bios_argv(core: Path) -> list[str]:
    """§7.4 step 3, amd64: the i386-pc core image (modules from grub-pc-bin)."""
    return [
        "grub-mkimage", "--format", "i386-pc", "--output", os.fspath(core), "--prefix", GRUB_PREFIX,
        *GRUB_MODULES, *BIOS_MODULES,
    ]  # fmt: skip


def mkimage_efi_argv(arch: Arch, out: Path) -> list[str]:
    """§7.4 step 3: GRUB's EFI image (grub-efi-amd64-bin; arm64 needs grub-efi-arm64-bin's modules)."""
    return [
        "grub-mkimage", "--format", EFI_PLATFORMS[arch], "--output", os.fspath(out), "--prefix", GRUB_PREFIX,
        "--compression", "xz", *GRUB_MODULES,
    ]  # fmt: skip


def patch_boot_img(boot_img: bytes, bios_lba: int) -> bytes:
    """§7.4 step 6: LE64 at 0x5C = BIOS partition first LBA; `90 90` at 0x66 (grub-install does that on GPT)."""
    if len(boot_img) < MBR_CODE_SIZE:
        raise ValueError(f"boot.img is {len(boot_img)} bytes, expected 512")
    patched = bytearray(boot_img)
    struct.pack_into("<Q", patched, BOOT_IMG_KERNEL_SECTOR, bios_lba)
    patched[BOOT_IMG_JUMP : BOOT_IMG_JUMP + 2] = b"\x90\x90"
    return bytes(patched)


def patch_core_img(core_img: bytes, bios_lba: int) -> bytes:
    """§7.4 step 6: LE64 at 0x1F4 = BIOS first LBA + 1; the sector count grub-mkimage wrote stays.

    LBAs are logical sectors (§7.7), as upstream computes them, also for 4096-byte-sector disks.
    """
    if len(core_img) < CORE_IMG_BLOCKLIST + 8:
        raise ValueError(f"core.img is only {len(core_img)} bytes")
    patched = bytearray(core_img)
    struct.pack_into("<Q", patched, CORE_IMG_BLOCKLIST, bios_lba + 1)
    return bytes(patched)


def install_bios(disk: Path, layout: GptLayout, boot_img: Path, core_img: Path) -> None:
    """Write the patched core.img at the start of BIOS and boot.img's code into the MBR (blocking)."""
    bios = layout.partition("BIOS")
    sector = layout.geometry.sector_size
    core = patch_core_img(core_img.read_bytes(), bios.first_lba)
    if len(core) > bios.size(sector):
        raise ValueError(f"core.img ({len(core)} bytes) does not fit the BIOS partition")
    boot = patch_boot_img(boot_img.read_bytes(), bios.first_lba)
    with disk.open("r+b") as f:
        f.seek(bios.offset(sector))
        f.write(core)
        f.seek(0)
        f.write(boot[:MBR_CODE_SIZE])


@dataclass(frozen=True)
class GrubStage:
    """§7.4 inputs. Without `kernel`, kernel and initramfs come out of the UKI (`.linux`/`.initrd`)."""

    arch: Arch
    cmdline: str
    name: str
    version: str
    reset_option: bool
    kernel: Path | None = None
    initramfs: Path | None = None
    uki: Path | None = None
    efi: bool = True  # False for dual-boot: its ESP holds sd-boot, GRUB's EFI image would be deleted (§7.6)

    def __post_init__(self) -> None:
        if (self.kernel is None) != (self.initramfs is None):
            raise ValueError("GRUB staging needs both kernel and initramfs, or neither (then the UKI)")
        if self.kernel is None and self.uki is None:
            raise ValueError("GRUB staging needs a kernel + initramfs or a UKI to extract them from")


async def stage_grub(stage: GrubStage, scratch: Path) -> None:
    """§7.4 steps 1-3 into `scratch` (= M): the BOOT tree `boot/`, amd64 `core.img` + `boot.img`, and (unless
    dual-boot) GRUB's EFI image as `EFI/EFI/boot/BOOT*.efi`."""
    await asyncio.to_thread(write_boot_tree, stage, scratch / "boot")
    if stage.arch is Arch.AMD64:
        await run_tool(mkimage_bios_argv(scratch / "core.img"), timeout=_TIMEOUT)
        await asyncio.to_thread(shutil.copyfile, BOOT_IMG, scratch / "boot.img")
    if stage.efi:
        efi_dir = scratch / "EFI" / "EFI" / "boot"
        await asyncio.to_thread(efi_dir.mkdir, parents=True)
        await run_tool(mkimage_efi_argv(stage.arch, efi_dir / EFI_BOOT_NAMES[stage.arch]), timeout=_TIMEOUT)


def write_boot_tree(stage: GrubStage, boot: Path) -> None:
    """`A/vmlinuz`, `A/initramfs.xz` (0644, dirs 0755) and `grub/grub.cfg` (0600 in a 0700 dir), §7.4 steps 1-2;
    the modes end up in the protofile, hence in the XFS (blocking)."""
    (boot / "A").mkdir(parents=True)
    (boot / "grub").mkdir()
    sources = (("vmlinuz", stage.kernel, ".linux"), ("initramfs.xz", stage.initramfs, ".initrd"))
    for name, source, section in sources:
        dest = boot / "A" / name
        if source is not None:
            shutil.copyfile(source, dest)
        else:
            assert stage.uki is not None  # checked in __post_init__
            extract_section(stage.uki, section, dest)
        dest.chmod(0o644)
    cfg = boot / "grub" / "grub.cfg"
    cfg.write_text(
        disk_grub_cfg(stage.cmdline, name=stage.name, version=stage.version, reset_option=stage.reset_option)
    )
    for path, mode in ((cfg, 0o600), (boot / "grub", 0o700), (boot / "A", 0o755), (boot, 0o755)):
        path.chmod(mode)


def extract_section(pe_path: Path, name: str, dest: Path) -> None:
    """Copy a UKI section's content (up to VirtualSize) into `dest` without reading it all into memory."""
    section = read_pe(pe_path).section(name)
    remaining = min(section.raw_size, section.virtual_size)
    with pe_path.open("rb") as src, dest.open("wb") as out:
        src.seek(section.raw_pointer)
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                raise ValueError(f"{pe_path}: section {name} is truncated")
            out.write(chunk)
            remaining -= len(chunk)


def loader_conf(enroll_mode: str | None) -> str:
    """§7.5 `loader/loader.conf`; the enroll line only when keys are enrolled (SecureBoot, mode ≠ off)."""
    text = "# systemd-boot configuration\n\ntimeout 10\n"
    return text + (f"\nsecure-boot-enroll {enroll_mode}\n" if enroll_mode else "")


@dataclass(frozen=True)
class SdBootStage:
    """§7.5 inputs; `enroll_keys` are `(name, path)` pairs such as `("PK.auth", …)` for `loader/keys/auto/`."""

    arch: Arch
    sd_boot: Path
    uki: Path
    version: str
    enroll_mode: str | None = None
    enroll_keys: tuple[tuple[str, Path], ...] = ()

    def __post_init__(self) -> None:
        if not self.version or "/" in self.version:
            raise ValueError(f"invalid version {self.version!r} for EFI/Linux/Talos-<version>.efi")
        if self.enroll_mode is not None and self.enroll_mode not in ENROLL_MODES:
            raise ValueError(f"secure-boot-enroll must be one of {', '.join(ENROLL_MODES)}")
        if (self.enroll_mode is None) != (not self.enroll_keys):
            raise ValueError("enroll keys and an enroll mode go together")
        if any("/" in name or not name.endswith(".auth") for name, _ in self.enroll_keys):
            raise ValueError("enroll keys must be plain *.auth file names")


def sdboot_tree(stage: SdBootStage) -> dict[str, Path | bytes]:
    """ESP path → source file or content (§7.5; no entries, no EFI variables, no random-seed)."""
    tree: dict[str, Path | bytes] = {
        f"EFI/boot/{EFI_BOOT_NAMES[stage.arch]}": stage.sd_boot,
        f"EFI/Linux/Talos-{stage.version}.efi": stage.uki,
        "loader/loader.conf": loader_conf(stage.enroll_mode).encode(),
    }
    tree.update((f"loader/keys/auto/{name}", path) for name, path in stage.enroll_keys)
    return tree


def stage_sdboot(stage: SdBootStage, scratch: Path) -> None:
    """Write the §7.5 tree to `scratch/EFI` (= the ESP source), replacing whatever GRUB staged there."""
    esp = scratch / "EFI"
    shutil.rmtree(esp, ignore_errors=True)
    write_tree(esp, sdboot_tree(stage))


def write_tree(root: Path, tree: dict[str, Path | bytes]) -> None:
    for rel, source in sorted(tree.items()):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if isinstance(source, bytes):
            dest.write_bytes(source)
        else:
            shutil.copyfile(source, dest)
        dest.chmod(0o644)


def esp_tops(esp: Path) -> Sequence[str]:
    """Top-level entries of the ESP source, sorted (Talos copies each with `mcopy -s`, §7.3)."""
    return sorted(p.name for p in esp.iterdir())
