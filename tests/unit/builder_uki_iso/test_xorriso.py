"""xorriso step (imager spec §5.3 step 5, §5.5): volume ids, native commands, pinned argv, El Torito reader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from services.builder.steps.xorriso import (
    BootEntry,
    IsoIdentity,
    eltorito_entries,
    iso_tool_env,
    native_commands,
    volume_date_uuid,
    volume_id,
    xorrisofs_uefi_argv,
)

EPOCH = 1559424892  # 2019-06-01 21:34:52 UTC


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Talos-v1.7.6", "TALOS_V1_7_6"),
        ("Talos-v1.7.6-beta.0", "TALOS_V1_7_6_BETA_0"),
        ("Talos-v1.12.0", "TALOS_V1_12_0"),
        ("Talos Enterprise-v1.12.0+x", "TALOSENTERPRISE_V1_12_0X"),
        ("Talos-v1.12.0-alpha.1-very-long-suffix.42", "TALOS_V1_12_0_ALPHA_1_VERY_LONG_"),
    ],
)
def test_volume_id(label: str, expected: str) -> None:
    assert volume_id(label) == expected


def test_native_commands() -> None:
    assert volume_date_uuid(EPOCH) == "2019060121345200"
    assert native_commands(IsoIdentity(EPOCH)) == [
        "-volume_date", "all_file_dates", "=1559424892",
        "-volume_date", "uuid", "2019060121345200",
    ]  # fmt: skip
    assert native_commands(IsoIdentity(EPOCH, "Talos-v1.12.0"))[6:] == [
        "-volid", "TALOS_V1_12_0",
        "-volset-id", "Talos-v1.12.0",
    ]  # fmt: skip
    assert iso_tool_env(IsoIdentity(EPOCH)) == {"SOURCE_DATE_EPOCH": "1559424892", "GRUB_FAT_SERIAL_NUMBER": "5cf2ef7c"}


def test_xorrisofs_uefi_argv() -> None:
    argv = xorrisofs_uefi_argv(Path("/w/iso"), Path("/w/out.iso"), IsoIdentity(EPOCH, "Talos-v1.12.0"))
    assert argv == [
        "xorrisofs",
        "-e", "--interval:appended_partition_2:all::",
        "-append_partition", "2", "0xef", "/w/iso/efiboot.img",
        "-partition_cyl_align", "all",
        "-partition_offset", "16",
        "-iso_mbr_part_type", "0x83",
        "-no-emul-boot",
        "-m", "efiboot.img",
        "-iso-level", "3",
        "-o", "/w/out.iso", "/w/iso",
        "--",
        "-volume_date", "all_file_dates", "=1559424892",
        "-volume_date", "uuid", "2019060121345200",
        "-volid", "TALOS_V1_12_0",
        "-volset-id", "Talos-v1.12.0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("epoch", "label", "message"),
    [(-1, None, "out of range"), (1 << 32, None, "out of range"), (EPOCH, "+++", "no usable characters")],
)
def test_bad_identity(epoch: int, label: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IsoIdentity(epoch, label)


def _entry(indicator: int, sectors: int, lba: int) -> bytes:
    return struct.pack("<BBHBBHI", indicator, 0, 0, 0, 0, sectors, lba).ljust(32, b"\0")


def test_eltorito_entries(tmp_path: Path) -> None:
    image = bytearray(2048 * 24)
    brvd = b"\0CD001\x01" + b"EL TORITO SPECIFICATION".ljust(32, b"\0")
    image[17 * 2048 : 17 * 2048 + len(brvd)] = brvd
    struct.pack_into("<I", image, 17 * 2048 + 0x47, 20)
    validation = bytearray(32)
    validation[0], validation[30:32] = 1, b"\x55\xaa"
    catalog = (
        bytes(validation)
        + _entry(0x88, 4, 100)  # initial entry: BIOS
        + struct.pack("<BBH", 0x91, 0xEF, 1).ljust(32, b"\0")  # last section header: UEFI, one entry
        + _entry(0x88, 5760, 72)
    )
    image[20 * 2048 : 20 * 2048 + len(catalog)] = catalog
    iso = tmp_path / "x.iso"
    iso.write_bytes(bytes(image))
    assert eltorito_entries(iso) == [BootEntry(0, 100, 4), BootEntry(0xEF, 72, 5760)]
    iso.write_bytes(bytes(2048 * 18))
    assert eltorito_entries(iso) == []
