"""xorrisofs for the UEFI-only ISO, the native xorriso commands shared by every ISO, and an El Torito reader
(imager spec §5.3 step 5, §5.5, §12 "ISO").
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.shared.tools import run_tool

EFIBOOT_IMG = "efiboot.img"  # §5.3: built inside the scratch dir, appended as partition 2, excluded from the tree
_SECTOR = 2048
_TIMEOUT = 600


@dataclass(frozen=True)
class IsoIdentity:
    """What §5.5 appends after `--`: fixed dates from SOURCE_DATE_EPOCH and, from 1.8, the volume label."""

    source_date_epoch: int
    volume_label: str | None = None  # `Talos-<version>` when SupportsISOLabel (≥1.8), else None

    def __post_init__(self) -> None:
        if not 0 <= self.source_date_epoch < 1 << 32:
            raise ValueError(f"SOURCE_DATE_EPOCH {self.source_date_epoch} is out of range")
        if self.volume_label is not None and not volume_id(self.volume_label):
            raise ValueError(f"volume label {self.volume_label!r} has no usable characters")


def volume_id(label: str) -> str:
    """§5.5 `VolumeID`: uppercase, keep A-Z0-9, map `_ - .` to `_`, drop the rest, at most 32 characters."""
    mapped = re.sub(r"[-_.]", "_", label.upper())
    return re.sub(r"[^A-Z0-9_]", "", mapped)[:32]


def volume_date_uuid(epoch: int) -> str:
    """`-volume_date uuid` value: YYYYMMDDhhmmss plus `00` centiseconds, in UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S") + "00"


def native_commands(identity: IsoIdentity) -> list[str]:
    """§5.5 native xorriso commands (go after `--`)."""
    epoch = identity.source_date_epoch
    argv = [
        "-volume_date", "all_file_dates", f"={epoch}",
        "-volume_date", "uuid", volume_date_uuid(epoch),
    ]  # fmt: skip
    if identity.volume_label is not None:
        argv += ["-volid", volume_id(identity.volume_label), "-volset-id", identity.volume_label]
    return argv


def iso_tool_env(identity: IsoIdentity) -> Mapping[str, str]:
    """Environment for xorrisofs/grub-mkrescue: the epoch, and the serial Talos' patched grub-mkrescue reads."""
    epoch = identity.source_date_epoch
    return {"SOURCE_DATE_EPOCH": str(epoch), "GRUB_FAT_SERIAL_NUMBER": f"{epoch & 0xFFFFFFFF:x}"}


def xorrisofs_uefi_argv(scratch: Path, out: Path, identity: IsoIdentity) -> list[str]:
    """§5.3 step 5: UEFI-only ISO, El Torito EFI entry = appended partition 2 (`efiboot.img`), no GPT."""
    return [
        "xorrisofs",
        "-e", "--interval:appended_partition_2:all::",
        "-append_partition", "2", "0xef", os.fspath(scratch / EFIBOOT_IMG),
        "-partition_cyl_align", "all",
        "-partition_offset", "16",
        "-iso_mbr_part_type", "0x83",
        "-no-emul-boot",
        "-m", EFIBOOT_IMG,
        "-iso-level", "3",
        "-o", os.fspath(out), os.fspath(scratch),
        "--", *native_commands(identity),
    ]  # fmt: skip


async def run_xorrisofs(argv: Sequence[str], identity: IsoIdentity) -> None:
    await run_tool(argv, timeout=_TIMEOUT, env_extra=iso_tool_env(identity))


@dataclass(frozen=True)
class BootEntry:
    """One El Torito boot image: platform 0x00 = BIOS, 0xEF = UEFI; `lba` in 2 KiB blocks."""

    platform: int
    lba: int
    sectors: int  # 512-byte load size as recorded in the catalog


def eltorito_entries(iso: Path) -> list[BootEntry]:
    """Read the El Torito boot catalog (boot record volume descriptor at block 17)."""
    with iso.open("rb") as f:
        f.seek(17 * _SECTOR)
        brvd = f.read(_SECTOR)
        if brvd[:7] != b"\0CD001\x01" or not brvd[7:39].startswith(b"EL TORITO SPECIFICATION"):
            return []
        (catalog,) = struct.unpack_from("<I", brvd, 0x47)
        f.seek(catalog * _SECTOR)
        data = f.read(_SECTOR)
    if data[0] != 1 or data[30:32] != b"\x55\xaa":
        raise ValueError(f"{iso}: invalid El Torito validation entry")
    entries = [_entry(data[1], data, 32)]
    pos = 64
    while pos + 32 <= len(data) and data[pos] in (0x90, 0x91):
        last = data[pos] == 0x91
        platform, count = data[pos + 1], struct.unpack_from("<H", data, pos + 2)[0]
        pos += 32
        for _ in range(count):
            entries.append(_entry(platform, data, pos))
            pos += 32
            while pos < len(data) and data[pos] == 0x44:  # extension records
                pos += 32
        if last:
            break
    return entries


def _entry(platform: int, data: bytes, pos: int) -> BootEntry:
    sectors, lba = struct.unpack_from("<HI", data, pos + 6)
    return BootEntry(platform, lba, sectors)
