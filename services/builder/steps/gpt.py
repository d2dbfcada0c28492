"""GPT layout and writer for disk images (imager spec §7.2 rules, §7.3 partition sets).

Written in Python rather than with `sgdisk`/`sfdisk` argv because §7.2 is go-blockdevice's own writer and
the CLIs cannot reproduce it: sgdisk sets FirstUsableLBA to 34 (we need the 1 MiB-aligned value), has no
logical-sector-size option for image files (4096-byte GPTs, §7.7), fills the PMBR CHS fields from the
geometry and picks random GUIDs unless each one is passed. A GPT is two headers, two entry arrays and one
MBR entry: `struct` + `zlib.crc32` reproduce it byte for byte, and tests read it back with sgdisk/sfdisk.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from services.builder.enums import Arch, Bootloader

MIB: Final = 1024 * 1024
ESP_TYPE: Final = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
BIOS_BOOT_TYPE: Final = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
LINUX_DATA_TYPE: Final = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
LEGACY_BIOS_BOOTABLE: Final = 1 << 2  # GPT attribute bit 2
DISK_LABEL: Final = "talos-image-disk"  # GUIDFromLabel input of the disk GUID (§7.2)
GRUB_ESP_SIZE: Final = 100 * MIB  # `quirks/partitions.go` (§2.5)
BIOS_SIZE: Final = 1 * MIB
META_SIZE: Final = 1 * MIB
STATE_SIZE: Final = 100 * MIB
_ENTRIES: Final = 128
_ENTRY_SIZE: Final = 128
_HEADER_SIZE: Final = 92


class Filesystem(StrEnum):
    """What fills a partition (§7.3); `none` partitions stay zero or get raw bytes (BIOS core.img, META ADV)."""

    VFAT = "vfat"
    XFS = "xfs"
    EXT4 = "ext4"
    NONE = "none"


def guid_from_label(label: str) -> uuid.UUID:
    """`makefs.GUIDFromLabel`: SHA-256(16 zero bytes ‖ label)[:16], version nibble 8, RFC 4122 variant."""
    raw = bytearray(hashlib.sha256(bytes(16) + label.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


DISK_GUID: Final = guid_from_label(DISK_LABEL)


@dataclass(frozen=True)
class PartitionSpec:
    """One requested partition: `size` in bytes, 0 = the rest of the disk (EPHEMERAL)."""

    label: str
    size: int
    type_guid: uuid.UUID = LINUX_DATA_TYPE
    filesystem: Filesystem = Filesystem.NONE
    attributes: int = 0

    @property
    def guid(self) -> uuid.UUID:
        return guid_from_label(self.label)


def partition_set(
    bootloader: Bootloader, arch: Arch, *, boot_size: int, data_partitions: bool, image_cache_size: int = 0
) -> tuple[PartitionSpec, ...]:
    """§7.3: boot partitions for the bootloader, META, STATE+EPHEMERAL below 1.8, IMAGECACHE when given.

    `boot_size` is `quirks.boot_partition_size`; the sd-boot ESP takes what GRUB's ESP, BIOS and BOOT would
    (100 + 1 + bootSize MiB). BOOT is always partition 3, GRUB's prefix `(hd0,gpt3)` depends on it, so GRUB
    images keep the (empty) BIOS partition on arm64 too.
    """
    esp = PartitionSpec("EFI", GRUB_ESP_SIZE, ESP_TYPE, Filesystem.VFAT)
    uki_esp = PartitionSpec("EFI", GRUB_ESP_SIZE + BIOS_SIZE + boot_size, ESP_TYPE, Filesystem.VFAT)
    bios = PartitionSpec("BIOS", BIOS_SIZE, BIOS_BOOT_TYPE, attributes=LEGACY_BIOS_BOOTABLE)
    boot = PartitionSpec("BOOT", boot_size, filesystem=Filesystem.XFS)
    match bootloader:
        case Bootloader.GRUB:
            parts = [esp, bios, boot]
        case Bootloader.SD_BOOT:
            parts = [uki_esp]
        case Bootloader.DUAL_BOOT if arch is Arch.AMD64:
            parts = [uki_esp, bios, boot]
        case Bootloader.DUAL_BOOT:
            raise ValueError("dual-boot bootloader is not supported on arm64 (§7.6)")
        case _:
            raise ValueError(f"disk images need a resolved bootloader, not {bootloader!r}")
    parts.append(PartitionSpec("META", META_SIZE))
    if data_partitions:
        parts += [PartitionSpec("STATE", STATE_SIZE), PartitionSpec("EPHEMERAL", 0)]
    if image_cache_size:
        parts.append(PartitionSpec("IMAGECACHE", image_cache_size, filesystem=Filesystem.EXT4))
    return tuple(parts)


@dataclass(frozen=True)
class Geometry:
    """§7.2 geometry of a `disk_size`-byte image with `sector_size`-byte logical sectors."""

    disk_size: int
    sector_size: int = 512
    skip_lbas: int = 0  # overlay offset before the primary entry array (§10)

    def __post_init__(self) -> None:
        if self.sector_size not in (512, 4096):
            raise ValueError(f"sector size must be 512 or 4096, not {self.sector_size}")
        if self.disk_size % self.sector_size or self.disk_size // self.sector_size < 34:
            raise ValueError(f"disk size {self.disk_size} is not a positive number of {self.sector_size}-byte sectors")

    @property
    def last_lba(self) -> int:
        return self.disk_size // self.sector_size - 1

    @property
    def entry_lbas(self) -> int:
        return _ENTRIES * _ENTRY_SIZE // self.sector_size  # 32 (512 B) or 4 (4 KiB)

    @property
    def alignment(self) -> int:
        return MIB // self.sector_size  # 2048 or 256

    @property
    def primary_entries_lba(self) -> int:
        return 2 + self.skip_lbas

    @property
    def backup_entries_lba(self) -> int:
        return self.last_lba - self.entry_lbas

    @property
    def first_usable_lba(self) -> int:
        return _round_up(self.primary_entries_lba + self.entry_lbas, self.alignment)

    @property
    def last_usable_lba(self) -> int:
        return self.backup_entries_lba - 1


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based, as in `(hd0,gptN)` and /dev/vdaN
    spec: PartitionSpec
    first_lba: int
    last_lba: int  # inclusive

    @property
    def label(self) -> str:
        return self.spec.label

    def offset(self, sector_size: int) -> int:
        return self.first_lba * sector_size

    def size(self, sector_size: int) -> int:
        return (self.last_lba - self.first_lba + 1) * sector_size


@dataclass(frozen=True)
class GptLayout:
    geometry: Geometry
    partitions: tuple[Partition, ...]
    disk_guid: uuid.UUID = DISK_GUID

    def partition(self, label: str) -> Partition:
        for part in self.partitions:
            if part.label == label:
                return part
        raise KeyError(label)


def plan_layout(geometry: Geometry, specs: tuple[PartitionSpec, ...]) -> GptLayout:
    """§7.2 allocation: in list order, each at the next aligned LBA; size 0 takes the rest, end aligned down."""
    sector, align = geometry.sector_size, geometry.alignment
    cursor, parts = geometry.first_usable_lba, []
    for number, spec in enumerate(specs, start=1):
        start = _round_up(cursor, align)
        tail = geometry.last_usable_lba // align * align  # go-blockdevice's allocatable range ends aligned
        size = spec.size or (tail - start) * sector
        if size % sector or size < sector:
            raise ValueError(f"partition {spec.label} size {size} is not a positive multiple of {sector}")
        last = start + size // sector - 1
        if last >= tail:
            raise ValueError(f"partition {spec.label} does not fit a {geometry.disk_size}-byte disk")
        parts.append(Partition(number, spec, start, last))
        cursor = last + 1
    return GptLayout(geometry, tuple(parts))


def render_entries(layout: GptLayout) -> bytes:
    table = bytearray(_ENTRIES * _ENTRY_SIZE)
    for i, part in enumerate(layout.partitions):
        name = part.label.encode("utf-16-le")
        if len(name) > 72:
            raise ValueError(f"partition name {part.label!r} is longer than 36 UTF-16 units")
        struct.pack_into(
            "<16s16sQQQ72s", table, i * _ENTRY_SIZE,
            part.spec.type_guid.bytes_le, part.spec.guid.bytes_le,
            part.first_lba, part.last_lba, part.spec.attributes, name,
        )  # fmt: skip
    return bytes(table)


def render_header(layout: GptLayout, entries_crc: int, *, backup: bool) -> bytes:
    """One sector: the primary header (LBA 1) or the backup (last LBA)."""
    geo = layout.geometry
    mine, other = (geo.last_lba, 1) if backup else (1, geo.last_lba)
    entries = geo.backup_entries_lba if backup else geo.primary_entries_lba
    fields = [
        b"EFI PART", 0x00010000, _HEADER_SIZE, 0, 0, mine, other, geo.first_usable_lba, geo.last_usable_lba,
        layout.disk_guid.bytes_le, entries, _ENTRIES, _ENTRY_SIZE, entries_crc,
    ]  # fmt: skip
    header = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", *fields))
    struct.pack_into("<I", header, 16, zlib.crc32(header))
    return bytes(header).ljust(geo.sector_size, b"\0")


def render_pmbr_entry(layout: GptLayout) -> bytes:
    """Bytes 446-511 of LBA 0: one 0xEE entry covering the disk (capped at 2^32-1 sectors) and `55 AA`."""
    length = min(layout.geometry.last_lba, 0xFFFFFFFF)
    entry = struct.pack("<B3sB3sII", 0x00, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, length)
    return entry + bytes(48) + b"\x55\xaa"


def write_gpt(image: Path, layout: GptLayout) -> None:
    """Write both tables and the PMBR into an existing image of `disk_size` bytes (blocking).

    Bytes 0-445 of LBA 0 are left alone: GRUB's boot.img goes there (§7.4 step 6).
    """
    geo = layout.geometry
    if image.stat().st_size != geo.disk_size:
        raise ValueError(f"{image} is {image.stat().st_size} bytes, the layout wants {geo.disk_size}")
    entries = render_entries(layout)
    crc = zlib.crc32(entries)
    with image.open("r+b") as f:
        for offset, data in (
            (446, render_pmbr_entry(layout)),
            (geo.sector_size, render_header(layout, crc, backup=False)),
            (geo.primary_entries_lba * geo.sector_size, entries),
            (geo.backup_entries_lba * geo.sector_size, entries),
            (geo.last_lba * geo.sector_size, render_header(layout, crc, backup=True)),
        ):
            f.seek(offset)
            f.write(data)


def write_partition(image: Path, layout: GptLayout, label: str, source: Path) -> None:
    """Copy a filesystem image into its partition (§7.1 step 7: sizes must match), skipping holes and zero
    blocks so the disk image stays sparse (blocking)."""
    part = layout.partition(label)
    offset, size = part.offset(layout.geometry.sector_size), part.size(layout.geometry.sector_size)
    if source.stat().st_size != size:
        raise ValueError(f"{source} is {source.stat().st_size} bytes, partition {label} is {size}")
    write_sparse(image, offset, source)


def write_sparse(image: Path, offset: int, source: Path, chunk: int = MIB) -> None:
    """Write `source` at `offset` of `image`, reading only its data extents (SEEK_DATA) and skipping zeros."""
    zero = bytes(chunk)
    with source.open("rb") as src, image.open("r+b") as dst:
        fd, end, pos = src.fileno(), os.fstat(src.fileno()).st_size, 0
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            while pos < hole:
                data = os.pread(fd, min(chunk, hole - pos), pos)
                if data != zero[: len(data)]:
                    os.pwrite(dst.fileno(), data, offset + pos)
                pos += len(data)


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align
