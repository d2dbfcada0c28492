"""FAT32 images without loop devices: mkfs.vfat + mtools (imager spec §5.3 steps 1-4, §11 "FAT32").

`efiboot.img` sizing and `mkfs.vfat -s` follow `iso/uefi.go`; `--invariant` pins the serial (`1234ABCD`) and
the boot-sector timestamps, `mcopy -m` keeps the SOURCE_DATE_EPOCH mtimes of the scratch tree, and entries
are added in sorted order (see `copy_plan`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.shared.tools import run_tool

MIB = 1024 * 1024
# §5.3/§14.8: FAT32 needs ≥65 525 clusters or mtools cannot read it ("Cannot initialize '::'"); Talos sizes
# tiny payloads below that, we clamp (documented deviation; real UKIs are larger anyway).
FAT32_MIN_SIZE = 40 * MIB
_FAT32_MIN_CLUSTERS = 65525
_TIMEOUT = 300


@dataclass(frozen=True)
class FatSpec:
    """One FAT32 image: `size` bytes, `sectors_per_cluster` as `mkfs.vfat -s`.

    Disk-image ESPs (imager §7.3) pass neither `-s` nor, for 512-byte sectors, `-S`: `sectors_per_cluster=0`
    leaves the cluster size to mkfs.vfat, `sector_size` (§7.7) adds `-S` when it is not 0.
    """

    label: str
    size: int
    sectors_per_cluster: int = 1
    sector_size: int = 0

    def __post_init__(self) -> None:
        if not 0 < len(self.label) <= 11 or not self.label.isascii():
            raise ValueError(f"FAT label {self.label!r} must be 1-11 ASCII characters")
        if self.size <= 0 or self.size % 512:
            raise ValueError(f"FAT image size {self.size} must be a positive multiple of 512")
        if self.sectors_per_cluster not in (0, 1, 2, 4, 8, 16, 32, 64, 128):
            raise ValueError(f"sectors per cluster {self.sectors_per_cluster} must be a power of two ≤128")
        if self.sector_size not in (0, 512, 1024, 2048, 4096) or self.size % max(self.sector_size, 1):
            raise ValueError(f"FAT sector size {self.sector_size} must be 512-4096 and divide the image size")


def efiboot_size(*payload_sizes: int, floor: int = FAT32_MIN_SIZE) -> int:
    """§5.3 step 1: 10 MiB + ceil_MiB of each payload (sd-boot, UKI), clamped to `floor`."""
    size = 10 * MIB + sum(-(-n // MIB) * MIB for n in payload_sizes)
    return max(size, floor)


def sectors_per_cluster(size: int) -> int:
    """§5.3 step 2: start at 1 and double (max 8) while (size/512)/next ≥ 65525+2048."""
    spc = 1
    while spc < 8 and (size // 512) // (spc * 2) >= _FAT32_MIN_CLUSTERS + 2048:
        spc *= 2
    return spc


def mkfs_argv(spec: FatSpec, image: Path) -> list[str]:
    cluster = ["-s", str(spec.sectors_per_cluster)] if spec.sectors_per_cluster else []
    sector = ["-S", str(spec.sector_size)] if spec.sector_size else []
    return [
        "mkfs.vfat", "-F", "32",
        "-n", spec.label,
        "--invariant",
        *cluster, *sector,
        os.fspath(image),
    ]  # fmt: skip


def mmd_argv(image: Path, directories: Sequence[str]) -> list[str]:
    return ["mmd", "-i", os.fspath(image), *(f"::/{d}" for d in directories)]


def mcopy_argv(image: Path, files: Sequence[Path], directory: str) -> list[str]:
    """Copy `files` into `directory` keeping mtimes (-m) and attributes (-p), quitting on the first error (-Q)."""
    return ["mcopy", "-p", "-Q", "-m", "-i", os.fspath(image), *map(os.fspath, files), f"::/{directory}"]


def mattrib_readonly_argv(image: Path, path: str) -> list[str]:
    return ["mattrib", "-i", os.fspath(image), "+r", f"::/{path}"]


def copy_plan(root: Path, tops: Sequence[str]) -> tuple[list[str], list[tuple[str, list[Path]]]]:
    """Directories to create (parents first) and files per directory, all sorted.

    Talos runs one `mcopy -s` over the tree; that follows readdir order, which depends on the filesystem
    (ext4 hashes names with a per-filesystem seed), so the FAT directory layout would too. Sorted `mmd` and
    per-directory `mcopy` calls give the same tree with a stable layout.
    """
    directories: list[str] = []
    files: dict[str, list[Path]] = {}
    pending = sorted(tops)
    while pending:
        rel = pending.pop(0)
        path = root / rel
        if path.is_dir():
            directories.append(rel)
            pending = sorted(f"{rel}/{child.name}" for child in path.iterdir()) + pending
        else:
            files.setdefault(rel.rpartition("/")[0], []).append(path)
    return directories, sorted(files.items())


async def make_fat_image(
    spec: FatSpec,
    image: Path,
    root: Path,
    tops: Sequence[str],
    *,
    source_date_epoch: int,
    readonly: Sequence[str] = (),
) -> None:
    """Create `image` (sparse), format it, copy the `tops` entries of `root` to its root, mark `readonly`.

    mtools stamps the directories it creates with SOURCE_DATE_EPOCH, so the epoch goes into its environment;
    files keep their (already touched) mtimes.
    """
    env = {"SOURCE_DATE_EPOCH": str(source_date_epoch)}
    with image.open("wb") as f:
        f.truncate(spec.size)
    await run_tool(mkfs_argv(spec, image), timeout=_TIMEOUT, env_extra=env)
    directories, files = copy_plan(root, tops)
    if directories:
        await run_tool(mmd_argv(image, directories), timeout=_TIMEOUT, env_extra=env)
    for directory, members in files:
        await run_tool(mcopy_argv(image, members, directory), timeout=_TIMEOUT, env_extra=env)
    for path in readonly:
        await run_tool(mattrib_readonly_argv(image, path), timeout=_TIMEOUT, env_extra=env)


def set_volume_serial(image: Path, serial: int, *, offset: int = 0) -> None:
    """Overwrite the volume serial of the FAT boot sector at `offset` (FAT12/16 BPB at 0x27, FAT32 at 0x43).

    Used on the EFI El Torito image that Debian's grub-mkrescue formats with a random serial (§5.5: only
    Talos' patched grub-mkrescue honours GRUB_FAT_SERIAL_NUMBER).
    """
    with image.open("r+b") as f:
        f.seek(offset)
        boot = f.read(512)
        if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
            raise ValueError(f"no FAT boot sector at offset {offset} of {image}")
        (fat_size16,) = struct.unpack_from("<H", boot, 0x16)
        sig, field = (0x26, 0x27) if fat_size16 else (0x42, 0x43)
        if boot[sig] != 0x29:
            raise ValueError(f"FAT boot sector at offset {offset} has no extended boot signature")
        f.seek(offset + field)
        f.write(struct.pack("<I", serial & 0xFFFFFFFF))
