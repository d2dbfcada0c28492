"""Disk images, rootless (imager spec §7.1 flow; §7.2-§7.9, §8.3, §10, §13).

Every filesystem is built as a regular file and copied into its partition's byte range; GPT, GRUB's
blocklist patch and META are written with Python; nothing needs loop devices, mounts or root. Version
decisions arrive as `DiskQuirks` (one field per quirk, `DiskQuirks.for_version` fills them) so this module
never parses a version. The output appears as `<out>.partial`, fsynced, then renamed to `out`.

SBC overlays (§10): `get-options`' partition offset moves the primary GPT entry array (and so the first
partition) back to leave room for board firmware; the overlay installer's `install` then runs on the bare
sparse image, before the GPT and the filesystems are written, and may `dd` firmware outside those ranges
(checked afterwards) and put files under `<M>/boot/EFI/`. Those land on the ESP, the behaviour of Talos
releases up to 1.13 (§14.1; HEAD would leave them in the BOOT tree), and for every bootloader: releases' sd-boot
installer ran the overlay step too, while HEAD's rootless sd-boot staging skips it (§7.5).

Not here (yet): the image-cache partition (§7.1 step 3, ext4).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.builder import quirks
from services.builder.enums import Arch, Bootloader, Compression, ImageFormat
from services.builder.steps import compress, fat, gpt, grub_disk, meta_adv, overlay, qemu_img, xfs
from services.builder.steps.gpt import Filesystem, GptLayout
from services.builder.steps.overlay import OverlayInstaller
from services.catalog.versions import Version
from services.schematic.model import MetaValue
from services.shared.errors import Internal, InvalidArgument

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_DATE_EPOCH: Final = 1559424892  # Talos' own (services/shared/tools.py)
_FAT32_MIN_CLUSTERS: Final = 65525


@dataclass(frozen=True)
class DiskQuirks:
    """The version quirks a disk image depends on (§2.5)."""

    boot_size: int  # PartitionSizes.bootSize: BOOT, and part of the sd-boot ESP
    data_partitions: bool  # not SkipDataPartitions: STATE + EPHEMERAL (<1.8)
    reset_grub_option: bool  # SupportsResetGRUBOption (≥1.4)
    xfs_config: str  # XFSMkfsConfig
    dual_boot_meta: bool  # UseSDBootForUEFI (≥1.10): META 0x11 = dual-boot (§7.1 step 1)

    @classmethod
    def for_version(cls, version: Version) -> DiskQuirks:
        return cls(
            boot_size=quirks.boot_partition_size(version),
            data_partitions=not quirks.skip_data_partitions(version),
            reset_grub_option=quirks.supports_reset_grub_option(version),
            xfs_config=quirks.xfs_mkfs_config(version),
            dual_boot_meta=quirks.use_sd_boot_for_uefi(version),
        )


@dataclass(frozen=True)
class DiskSpec:
    """Everything one disk image is made of. `bootloader` is resolved (not `none`); `disk_size` is the
    profile's final size (after §2.2's bootSize/dual-boot adjustments); `version` is the tag (`v1.12.0`)
    for grub.cfg and `EFI/Linux/Talos-<version>.efi`; `meta_values` in profile order (§8.4)."""

    arch: Arch
    version: str
    bootloader: Bootloader
    cmdline: str
    disk_size: int
    quirks: DiskQuirks
    kernel: Path | None = None  # GRUB: kernel + initramfs, or None to extract both from `uki`
    initramfs: Path | None = None
    uki: Path | None = None  # sd-boot / dual-boot
    sd_boot: Path | None = None  # systemd-boot EFI binary
    name: str = "Talos"
    secureboot: bool = False
    enroll_mode: str | None = None  # `secure-boot-enroll` (SecureBoot, mode ≠ off) with `enroll_keys`
    enroll_keys: tuple[tuple[str, Path], ...] = ()  # ("PK.auth", path), ("KEK.auth", …), ("db.auth", …)
    sector_size: int = 512
    disk_format: ImageFormat = ImageFormat.RAW
    disk_format_options: str = ""
    compression: Compression = Compression.RAW
    meta_values: tuple[MetaValue, ...] = ()
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH
    overlay: OverlayInstaller | None = None  # SBC overlay: partition offset + install step (§10)

    def __post_init__(self) -> None:
        if self.bootloader.has_sd_boot and (self.uki is None or self.sd_boot is None):
            raise ValueError(f"{self.bootloader} disk images need a UKI and systemd-boot")
        if self.bootloader.has_grub and self.kernel is None and self.uki is None:
            raise ValueError(f"{self.bootloader} disk images need a kernel + initramfs or a UKI")
        if self.compression is Compression.TAR_GZ and self.disk_format is not ImageFormat.RAW:
            raise ValueError(".tar.gz packs a raw disk (GCP import layout, §7.9)")
        esp = self.layout().partition("EFI")  # partitions must fit: fail before any work
        if esp.size(self.sector_size) // self.sector_size < _FAT32_MIN_CLUSTERS:
            # §14.9: GRUB's 100 MiB ESP at 4 KiB sectors is 25 600 clusters; mkfs.vfat -F 32 warns and writes
            # it, but mtools (and the FAT spec) read it as FAT16 and fail, so refuse early and clearly.
            raise InvalidArgument(
                f"{self.bootloader} disk images cannot use {self.sector_size}-byte sectors: the ESP would have "
                f"fewer than {_FAT32_MIN_CLUSTERS} clusters, too few for FAT32"
            )

    def layout(self) -> GptLayout:
        specs = gpt.partition_set(
            self.bootloader, self.arch, boot_size=self.quirks.boot_size, data_partitions=self.quirks.data_partitions
        )
        skip = self.overlay.options.partition_offset if self.overlay is not None else 0
        return gpt.plan_layout(gpt.Geometry(self.disk_size, self.sector_size, skip_lbas=skip), specs)

    def all_meta_values(self) -> tuple[MetaValue, ...]:
        """§7.1 step 1: amd64, no SecureBoot, ≥1.10 and dual-boot add 0x11 = `dual-boot` (after the profile's)."""
        extra = (
            self.bootloader is Bootloader.DUAL_BOOT
            and self.arch is Arch.AMD64
            and not self.secureboot
            and self.quirks.dual_boot_meta
        )
        return (*self.meta_values, meta_adv.DUAL_BOOT_VALUE) if extra else self.meta_values


async def build_disk(spec: DiskSpec, work: Path, out: Path) -> None:
    """Build the disk image of `spec` into `out`; `work` is an empty, build-private scratch directory."""
    layout = spec.layout()
    scratch, disk = work / "image", work / "disk.raw"
    await asyncio.to_thread(scratch.mkdir)
    await _stage(spec, scratch)
    await asyncio.to_thread(_create_disk, disk, layout)
    if spec.overlay is not None:
        await _overlay_install(spec.overlay, disk, layout, scratch, work)
    await asyncio.to_thread(_touch_tree, scratch, spec.source_date_epoch)
    await asyncio.to_thread(gpt.write_gpt, disk, layout)
    await _filesystems(spec, layout, scratch, disk)
    if spec.arch is Arch.AMD64 and spec.bootloader.has_grub:
        await asyncio.to_thread(grub_disk.install_bios, disk, layout, scratch / "boot.img", scratch / "core.img")
    if values := spec.all_meta_values():
        await asyncio.to_thread(_write_meta, disk, layout, values)
    result = await _convert(spec, disk, work)
    result = await compress.post_process(result, spec.compression, source_date_epoch=spec.source_date_epoch)
    await asyncio.to_thread(_publish, result, out)


async def _stage(spec: DiskSpec, scratch: Path) -> None:
    """§7.1 step 5: GRUB (§7.4), then sd-boot (§7.5) replacing GRUB's ESP content for dual-boot (§7.6)."""
    if spec.bootloader.has_grub:
        stage = grub_disk.GrubStage(
            arch=spec.arch, cmdline=spec.cmdline, name=spec.name, version=spec.version,
            reset_option=spec.quirks.reset_grub_option, kernel=spec.kernel, initramfs=spec.initramfs, uki=spec.uki,
            efi=not spec.bootloader.has_sd_boot,
        )  # fmt: skip
        await grub_disk.stage_grub(stage, scratch)
    if spec.bootloader.has_sd_boot:
        assert spec.uki is not None and spec.sd_boot is not None  # DiskSpec.__post_init__
        sdboot = grub_disk.SdBootStage(spec.arch, spec.sd_boot, spec.uki, spec.version, spec.enroll_mode,
                                       spec.enroll_keys)  # fmt: skip
        await asyncio.to_thread(grub_disk.stage_sdboot, sdboot, scratch)


def _create_disk(disk: Path, layout: GptLayout) -> None:
    """§7.1 step 4: a sparse file of `disk_size` bytes (the GPT follows the overlay step, step 6)."""
    with disk.open("wb") as f:
        f.truncate(layout.geometry.disk_size)


async def _overlay_install(step: OverlayInstaller, disk: Path, layout: GptLayout, scratch: Path, work: Path) -> None:
    """§7.4 step 4 / §10: the overlay installer's `install` on the bare image, with `M` as mount prefix and a
    private copy of the artifacts (`<tmp>/overlay/artifacts`, so the cached image stays untouched)."""
    request = await asyncio.to_thread(_install_request, step, disk, scratch, work / "overlay" / "artifacts")
    await overlay.install(step.installer, request, cwd=work)
    await asyncio.to_thread(check_raw_writes, disk, layout, step.installer.name)
    await asyncio.to_thread(_boot_efi_to_esp, scratch)


def _install_request(step: OverlayInstaller, disk: Path, scratch: Path, artifacts: Path) -> overlay.InstallRequest:
    shutil.copytree(step.artifacts, artifacts, symlinks=True)
    return overlay.InstallRequest(disk.resolve(), scratch.resolve(), artifacts.resolve(), step.extra_options)


def check_raw_writes(disk: Path, layout: GptLayout, installer: str) -> None:
    """§10: raw writes must leave the image size, the GPT structures and every partition alone; the GPT and
    filesystems written afterwards would silently overwrite (or, skipping zeros, merge with) them."""
    geo = layout.geometry
    if disk.stat().st_size != geo.disk_size:
        raise Internal(f"overlay installer {installer} resized the disk image to {disk.stat().st_size} bytes")
    sector = geo.sector_size
    regions = [
        ("the protective MBR entry", 446, 512),
        ("the primary GPT header", sector, 2 * sector),
        (
            "the primary GPT entries",
            geo.primary_entries_lba * sector,
            (geo.primary_entries_lba + geo.entry_lbas) * sector,
        ),
        ("the backup GPT", geo.backup_entries_lba * sector, geo.disk_size),
        *((f"partition {p.label}", p.offset(sector), p.offset(sector) + p.size(sector)) for p in layout.partitions),
    ]
    for what, start, end in regions:
        if not _all_zero(disk, start, end):
            raise Internal(
                f"overlay installer {installer} wrote into {what} (bytes {start}-{end - 1}) of the disk image"
            )


def _all_zero(path: Path, start: int, end: int, chunk: int = 1 << 20) -> bool:
    """Whether bytes [start, end) are zero, reading only data extents (SEEK_DATA): cheap on a sparse image."""
    with path.open("rb") as f:
        fd, pos = f.fileno(), start
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                return True
            if pos >= end:
                return True
            hole = min(os.lseek(fd, pos, os.SEEK_HOLE), end)
            while pos < hole:
                data = os.pread(fd, min(chunk, hole - pos), pos)
                if data.count(0) != len(data):
                    return False
                pos += len(data)
    return True


def _boot_efi_to_esp(scratch: Path) -> None:
    """Overlay files under `M/boot/EFI/` go onto the ESP root (`M/EFI/`), replacing same-named files, as the
    release installers did with the ESP mounted there (§14.1)."""
    source = scratch / "boot" / "EFI"
    if not source.is_dir():
        return
    shutil.copytree(source, scratch / "EFI", symlinks=False, dirs_exist_ok=True)
    shutil.rmtree(source)


async def _filesystems(spec: DiskSpec, layout: GptLayout, scratch: Path, disk: Path) -> None:
    """§7.1 step 7: each vfat/xfs partition becomes `<LABEL>.img` of exactly its size, then its byte range."""
    sector = layout.geometry.sector_size
    explicit_sector = sector if sector != 512 else 0  # `-S`/`-s size=` only for non-default sectors (§7.7)
    for part in layout.partitions:
        image = scratch / f"{part.label}.img"
        size = part.size(sector)
        if part.spec.filesystem is Filesystem.VFAT:
            esp = scratch / "EFI"
            fat_spec = fat.FatSpec(part.label, size, sectors_per_cluster=0, sector_size=explicit_sector)
            await fat.make_fat_image(fat_spec, image, esp, grub_disk.esp_tops(esp),
                                     source_date_epoch=spec.source_date_epoch)  # fmt: skip
        elif part.spec.filesystem is Filesystem.XFS:
            xfs_spec = xfs.XfsSpec(part.label, size, part.spec.guid, spec.quirks.xfs_config, explicit_sector)
            await xfs.make_xfs_image(xfs_spec, image, scratch / "boot", source_date_epoch=spec.source_date_epoch)
        else:
            continue
        await asyncio.to_thread(gpt.write_partition, disk, layout, part.label, image)
        await asyncio.to_thread(image.unlink)


def _write_meta(disk: Path, layout: GptLayout, values: tuple[MetaValue, ...]) -> None:
    """§7.1 step 9 / §8.3: the ADV image over the whole META partition."""
    part = layout.partition("META")
    sector = layout.geometry.sector_size
    data = meta_adv.meta_image(values, part.size(sector))
    with disk.open("r+b") as f:
        f.seek(part.offset(sector))
        f.write(data)


async def _convert(spec: DiskSpec, disk: Path, work: Path) -> Path:
    """§7.8: raw stays; qcow2/vhd convert in place; ova replaces the raw with the OVA tarball."""
    if spec.disk_format is ImageFormat.RAW:
        return disk
    if spec.disk_format is not ImageFormat.OVA:
        await qemu_img.convert_in_place(disk, spec.disk_format, spec.disk_format_options)
        return disk
    ova_dir = work / "ova"
    await asyncio.to_thread(ova_dir.mkdir)
    vmdk = ova_dir / "disk.vmdk"
    await qemu_img.convert(disk, vmdk, "vmdk", qemu_img.VMDK_OPTIONS)
    await asyncio.to_thread(disk.unlink)
    await asyncio.to_thread(
        compress.package_ova, vmdk, disk, disk_size=spec.disk_size, source_date_epoch=spec.source_date_epoch
    )
    return disk


def _touch_tree(root: Path, epoch: int) -> None:
    """Source trees get SOURCE_DATE_EPOCH mtimes (§7.1 step 7), which `mcopy -m` keeps on the ESP."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def _publish(result: Path, out: Path) -> None:
    """STYLE §9: `out.partial`, fsynced, then renamed; nothing half-written is ever at `out`."""
    partial = out.with_name(out.name + ".partial")
    shutil.move(result, partial)
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.rename(out)
    logger.debug("disk image %s ready (%d bytes)", out, out.stat().st_size)
