"""GPT layout arithmetic and bytes (imager spec §7.2, §7.3 worked layouts)."""

from __future__ import annotations

import struct
import uuid
import zlib
from pathlib import Path

import pytest

from services.builder.assets.disk import DiskQuirks
from services.builder.enums import Arch, Bootloader
from services.builder.steps import gpt
from services.builder.steps.gpt import MIB, Geometry, PartitionSpec, guid_from_label, partition_set, plan_layout
from services.catalog.versions import Version

V1_7, V1_9, V1_10, V1_12 = Version(1, 7, 0), Version(1, 9, 0), Version(1, 10, 0), Version(1, 12, 0)
DUAL, SDBOOT, GRUB = Bootloader.DUAL_BOOT, Bootloader.SD_BOOT, Bootloader.GRUB
AMD64, ARM64 = Arch.AMD64, Arch.ARM64


@pytest.mark.parametrize(
    ("label", "guid"),
    [
        ("talos-image-disk", "d92d45b3-cde9-8760-be9f-a2a71fac8d11"),
        ("EFI", "bca5174b-0118-8a6a-af0b-2c6e1585acae"),
        ("BIOS", "a2a02ff5-d88d-8e6e-9c95-26b9b6c80bc3"),
        ("BOOT", "24c73076-4092-85dd-9d98-686a2dbf6d81"),
        ("META", "cf04f137-101e-8ec6-9627-fa3f51cdabb8"),
        ("STATE", "f7f88648-df7c-8acb-b4d2-6f124659d923"),
        ("EPHEMERAL", "c5e02400-0e5e-80bc-99ec-53b3e45ad6c4"),
        ("IMAGECACHE", "3b5449bc-c21f-8009-8b51-18945967f8df"),
    ],
)
def test_guid_from_label(label: str, guid: str) -> None:
    assert guid_from_label(label) == uuid.UUID(guid)


# (version, bootloader, arch, sector, disk MiB) → [(label, first LBA, last LBA), ...]; the first five rows are
# the §7.3 worked layouts, the rest follow the same rules.
LAYOUTS = [
    (Version(1, 11, 0), DUAL, AMD64, 512, 4247,
     [("EFI", 2048, 4304895), ("BIOS", 4304896, 4306943), ("BOOT", 4306944, 8402943), ("META", 8402944, 8404991)]),
    (Version(1, 11, 0), SDBOOT, ARM64, 512, 2246, [("EFI", 2048, 4304895), ("META", 4304896, 4306943)]),
    (Version(1, 11, 0), DUAL, AMD64, 4096, 4247,
     [("EFI", 256, 538111), ("BIOS", 538112, 538367), ("BOOT", 538368, 1050367), ("META", 1050368, 1050623)]),
    (V1_10, DUAL, AMD64, 512, 2247,
     [("EFI", 2048, 2256895), ("BIOS", 2256896, 2258943), ("BOOT", 2258944, 4306943), ("META", 4306944, 4308991)]),
    (V1_9, GRUB, AMD64, 512, 1246,
     [("EFI", 2048, 206847), ("BIOS", 206848, 208895), ("BOOT", 208896, 2256895), ("META", 2256896, 2258943)]),
    (V1_7, GRUB, AMD64, 512, 1246,
     [("EFI", 2048, 206847), ("BIOS", 206848, 208895), ("BOOT", 208896, 2256895), ("META", 2256896, 2258943),
      ("STATE", 2258944, 2463743), ("EPHEMERAL", 2463744, 2549759)]),
    (V1_7, GRUB, AMD64, 4096, 1246,
     [("EFI", 256, 25855), ("BIOS", 25856, 26111), ("BOOT", 26112, 282111), ("META", 282112, 282367),
      ("STATE", 282368, 307967), ("EPHEMERAL", 307968, 318719)]),
    (V1_12, SDBOOT, AMD64, 4096, 2246, [("EFI", 256, 538111), ("META", 538112, 538367)]),
    (V1_9, GRUB, ARM64, 512, 1246,
     [("EFI", 2048, 206847), ("BIOS", 206848, 208895), ("BOOT", 208896, 2256895), ("META", 2256896, 2258943)]),
]  # fmt: skip


@pytest.mark.parametrize(("version", "bootloader", "arch", "sector", "mib", "expected"), LAYOUTS)
def test_layouts(
    version: Version, bootloader: Bootloader, arch: Arch, sector: int, mib: int, expected: list[tuple[str, int, int]]
) -> None:
    q = DiskQuirks.for_version(version)
    specs = partition_set(bootloader, arch, boot_size=q.boot_size, data_partitions=q.data_partitions)
    layout = plan_layout(Geometry(mib * MIB, sector), specs)
    assert [(p.label, p.first_lba, p.last_lba) for p in layout.partitions] == expected
    assert [p.number for p in layout.partitions] == list(range(1, len(expected) + 1))


@pytest.mark.parametrize(
    ("sector", "mib", "last", "first_usable", "last_usable", "backup_entries"),
    [(512, 4247, 8697855, 2048, 8697822, 8697823), (4096, 4247, 1087231, 256, 1087226, 1087227)],
)
def test_geometry(sector: int, mib: int, last: int, first_usable: int, last_usable: int, backup_entries: int) -> None:
    geo = Geometry(mib * MIB, sector)
    assert (geo.last_lba, geo.first_usable_lba, geo.last_usable_lba) == (last, first_usable, last_usable)
    assert geo.backup_entries_lba == backup_entries
    assert geo.entry_lbas == (32 if sector == 512 else 4)


def test_partition_attributes_types_and_filesystems() -> None:
    specs = {s.label: s for s in partition_set(DUAL, AMD64, boot_size=1000 * MIB, data_partitions=True)}
    assert specs["EFI"].type_guid == uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    assert specs["EFI"].size == 1101 * MIB and specs["EFI"].filesystem is gpt.Filesystem.VFAT
    assert specs["BIOS"].type_guid == uuid.UUID("21686148-6449-6E6F-744E-656564454649")
    assert specs["BIOS"].attributes == 0x4
    assert specs["BOOT"].filesystem is gpt.Filesystem.XFS
    for label in ("BOOT", "META", "STATE", "EPHEMERAL"):
        assert specs[label].type_guid == uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
        assert specs[label].attributes == 0
    assert specs["EPHEMERAL"].size == 0
    cache = partition_set(SDBOOT, ARM64, boot_size=MIB, data_partitions=False, image_cache_size=5 * MIB)[-1]
    assert (cache.label, cache.size, cache.filesystem) == ("IMAGECACHE", 5 * MIB, gpt.Filesystem.EXT4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: partition_set(DUAL, ARM64, boot_size=MIB, data_partitions=False), "not supported on arm64"),
        (lambda: partition_set(Bootloader.NONE, AMD64, boot_size=MIB, data_partitions=False), "resolved bootloader"),
        (lambda: Geometry(1000 * MIB, 1024), "512 or 4096"),
        (lambda: Geometry(1000 * MIB + 512, 4096), "4096-byte sectors"),
        (lambda: plan_layout(Geometry(1103 * MIB), partition_set(GRUB, AMD64, boot_size=1000 * MIB,
                                                                 data_partitions=False)), "does not fit"),
        (lambda: plan_layout(Geometry(1106 * MIB), partition_set(GRUB, AMD64, boot_size=1000 * MIB,
                                                                 data_partitions=True)), "does not fit"),
        (lambda: plan_layout(Geometry(10 * MIB), (PartitionSpec("X", 100),)), "multiple of 512"),
    ],
)  # fmt: skip
def test_bad_layouts(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def _small_layout(sector: int = 512) -> gpt.GptLayout:
    specs = (PartitionSpec("EFI", 2 * MIB, gpt.ESP_TYPE), PartitionSpec("BIOS", MIB, gpt.BIOS_BOOT_TYPE, attributes=4))
    return plan_layout(Geometry(8 * MIB, sector), specs)


@pytest.mark.parametrize("sector", [512, 4096])
def test_written_tables_parse_back(tmp_path: Path, sector: int) -> None:
    layout = _small_layout(sector)
    image = tmp_path / "disk.raw"
    with image.open("wb") as f:
        f.write(b"\xab" * 512)  # stands for boot.img: bytes 0-445 must survive
        f.truncate(8 * MIB)
    gpt.write_gpt(image, layout)
    data = image.read_bytes()
    assert data[:446] == b"\xab" * 446
    assert data[446:462] == bytes.fromhex("000002 00 ee ffffff 01000000".replace(" ", "")) + struct.pack(
        "<I", 8 * MIB // sector - 1
    )
    assert data[462:510] == bytes(48) and data[510:512] == b"\x55\xaa"
    last = 8 * MIB // sector - 1
    for lba, mine, other in ((1, 1, last), (last, last, 1)):
        header = data[lba * sector : lba * sector + 92]
        fields = struct.unpack("<8sIIIIQQQQ16sQIII", header)
        assert fields[0] == b"EFI PART" and fields[1] == 0x10000 and fields[2] == 92
        assert zlib.crc32(header[:16] + bytes(4) + header[20:]) == fields[3]
        assert (fields[5], fields[6]) == (mine, other)
        assert (fields[7], fields[8]) == (layout.geometry.first_usable_lba, layout.geometry.last_usable_lba)
        assert uuid.UUID(bytes_le=fields[9]) == uuid.UUID("d92d45b3-cde9-8760-be9f-a2a71fac8d11")
        entries = data[fields[10] * sector : fields[10] * sector + 128 * 128]
        assert (fields[11], fields[12], fields[13]) == (128, 128, zlib.crc32(entries))
        assert data[lba * sector + 92 : (lba + 1) * sector] == bytes(sector - 92)
        type_guid, part_guid, first, end, attrs, name = struct.unpack_from("<16s16sQQQ72s", entries, 128)
        assert uuid.UUID(bytes_le=type_guid) == gpt.BIOS_BOOT_TYPE
        assert uuid.UUID(bytes_le=part_guid) == guid_from_label("BIOS")
        assert (first, end, attrs) == (layout.partition("BIOS").first_lba, layout.partition("BIOS").last_lba, 4)
        assert name.decode("utf-16-le").rstrip("\0") == "BIOS"
        assert entries[256:] == bytes(len(entries) - 256)


def test_pmbr_length_is_capped() -> None:
    layout = plan_layout(Geometry(3 * 1024 * 1024 * MIB), (PartitionSpec("META", MIB),))
    assert gpt.render_pmbr_entry(layout)[12:16] == b"\xff\xff\xff\xff"


def test_write_gpt_refuses_wrong_size(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(MIB))
    with pytest.raises(ValueError, match="wants"):
        gpt.write_gpt(image, _small_layout())


def test_write_partition_is_sparse_and_checks_size(tmp_path: Path) -> None:
    layout = _small_layout()
    disk, source = tmp_path / "disk.raw", tmp_path / "EFI.img"
    with disk.open("wb") as f:
        f.truncate(8 * MIB)
    with source.open("wb") as f:
        f.truncate(2 * MIB)
        f.seek(4096)
        f.write(b"fat!")
        f.seek(MIB + 100)
        f.write(b"tail")
    gpt.write_partition(disk, layout, "EFI", source)
    offset = layout.partition("EFI").offset(512)
    data = disk.read_bytes()
    assert data[offset + 4096 : offset + 4100] == b"fat!" and data[offset + MIB + 100 : offset + MIB + 104] == b"tail"
    assert disk.stat().st_blocks * 512 <= 3 * MIB  # only the data chunks were written
    with pytest.raises(ValueError, match="partition BIOS"):
        gpt.write_partition(disk, layout, "BIOS", source)
