"""FAT32 step (imager spec §5.3 steps 1-4): sizes, pinned argv, sorted copy plan, serial patching."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from services.builder.steps.fat import (
    FAT32_MIN_SIZE,
    MIB,
    FatSpec,
    copy_plan,
    efiboot_size,
    make_fat_image,
    mattrib_readonly_argv,
    mcopy_argv,
    mkfs_argv,
    mmd_argv,
    sectors_per_cluster,
    set_volume_serial,
)
from tests.unit.builder_uki_iso.helpers import fake_tool, recorded


def test_efiboot_size() -> None:
    # 10 MiB + ceil_MiB(sd-boot) + ceil_MiB(UKI)
    assert efiboot_size(140_891, 60 * MIB + 1, floor=0) == (10 + 1 + 61) * MIB
    assert efiboot_size(MIB, 2 * MIB, floor=0) == 13 * MIB
    # clamped so FAT32 keeps ≥65 525 clusters (§14.8)
    assert efiboot_size(140_891, 500_000) == FAT32_MIN_SIZE == 40 * MIB


@pytest.mark.parametrize(
    ("size_mib", "spc"),
    [(40, 1), (65, 1), (66, 2), (131, 2), (132, 4), (263, 4), (264, 8), (4096, 8)],
)
def test_sectors_per_cluster(size_mib: int, spc: int) -> None:
    # doubles while (size/512)/next ≥ 65525+2048 = 67573, at most 8
    assert sectors_per_cluster(size_mib * MIB) == spc


def test_argv_pins() -> None:
    image = Path("/w/efiboot.img")
    spec = FatSpec(label="EFI", size=40 * MIB, sectors_per_cluster=2)
    assert mkfs_argv(spec, image) == ["mkfs.vfat", "-F", "32", "-n", "EFI", "--invariant", "-s", "2", "/w/efiboot.img"]
    assert mmd_argv(image, ["EFI", "EFI/BOOT"]) == ["mmd", "-i", "/w/efiboot.img", "::/EFI", "::/EFI/BOOT"]
    assert mcopy_argv(image, [Path("/s/EFI/BOOT/BOOTX64.EFI")], "EFI/BOOT") == [
        "mcopy", "-p", "-Q", "-m", "-i", "/w/efiboot.img", "/s/EFI/BOOT/BOOTX64.EFI", "::/EFI/BOOT",
    ]  # fmt: skip
    assert mattrib_readonly_argv(image, "loader/random-seed") == [
        "mattrib", "-i", "/w/efiboot.img", "+r", "::/loader/random-seed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "", "size": MIB}, "1-11 ASCII"),
        ({"label": "TWELVE_CHARS", "size": MIB}, "1-11 ASCII"),
        ({"label": "EFI", "size": 1000}, "multiple of 512"),
        ({"label": "EFI", "size": MIB, "sectors_per_cluster": 3}, "power of two"),
    ],
)
def test_bad_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FatSpec(**kwargs)  # type: ignore[arg-type]


def _tree(root: Path) -> None:
    for rel in ("loader/random-seed", "loader/loader.conf", "EFI/Linux/Talos-v1.12.0.efi", "EFI/BOOT/BOOTX64.EFI"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def test_copy_plan_is_sorted(tmp_path: Path) -> None:
    _tree(tmp_path)
    directories, files = copy_plan(tmp_path, ["loader", "EFI"])
    assert directories == ["EFI", "EFI/BOOT", "EFI/Linux", "loader"]
    assert [(d, [p.relative_to(tmp_path).as_posix() for p in f]) for d, f in files] == [
        ("EFI/BOOT", ["EFI/BOOT/BOOTX64.EFI"]),
        ("EFI/Linux", ["EFI/Linux/Talos-v1.12.0.efi"]),
        ("loader", ["loader/loader.conf", "loader/random-seed"]),
    ]


async def test_make_fat_image_runs_tools_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    for tool in ("mkfs.vfat", "mmd", "mcopy", "mattrib"):
        fake_tool(bindir, tool, log)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    root = tmp_path / "tree"
    _tree(root)
    image = tmp_path / "efiboot.img"
    spec = FatSpec("EFI", 40 * MIB)
    await make_fat_image(spec, image, root, ["EFI", "loader"], source_date_epoch=42, readonly=["loader/random-seed"])
    assert image.stat().st_size == 40 * MIB
    calls = recorded(log)
    assert {c[0] for c in calls} == {"42"}  # SOURCE_DATE_EPOCH reaches every tool
    assert [c[1:] for c in calls] == [
        mkfs_argv(spec, image),
        mmd_argv(image, ["EFI", "EFI/BOOT", "EFI/Linux", "loader"]),
        mcopy_argv(image, [root / "EFI/BOOT/BOOTX64.EFI"], "EFI/BOOT"),
        mcopy_argv(image, [root / "EFI/Linux/Talos-v1.12.0.efi"], "EFI/Linux"),
        mcopy_argv(image, [root / "loader/loader.conf", root / "loader/random-seed"], "loader"),
        mattrib_readonly_argv(image, "loader/random-seed"),
    ]


def _boot_sector(fat32: bool) -> bytearray:
    sector = bytearray(512)
    sector[510:512] = b"\x55\xaa"
    if fat32:
        sector[0x42] = 0x29
    else:
        struct.pack_into("<H", sector, 0x16, 9)  # sectors per FAT (FAT12/16 only)
        sector[0x26] = 0x29
    return sector


@pytest.mark.parametrize(("fat32", "field"), [(False, 0x27), (True, 0x43)])
def test_set_volume_serial(tmp_path: Path, fat32: bool, field: int) -> None:
    image = tmp_path / "disk.iso"
    image.write_bytes(bytes(4096) + _boot_sector(fat32) + bytes(512))
    set_volume_serial(image, 0x5CF2EF7C, offset=4096)
    assert image.read_bytes()[4096 + field : 4096 + field + 4] == struct.pack("<I", 0x5CF2EF7C)


def test_set_volume_serial_refuses_non_fat(tmp_path: Path) -> None:
    image = tmp_path / "disk.iso"
    image.write_bytes(bytes(1024))
    with pytest.raises(ValueError, match="no FAT boot sector"):
        set_volume_serial(image, 1)
