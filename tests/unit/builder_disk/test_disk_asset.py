"""`build_disk` with recorded tools: flow order, quirk inputs, META, publishing (imager spec §7.1)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from services.builder.assets import disk as disk_asset
from services.builder.assets.disk import DiskQuirks, DiskSpec, build_disk
from services.builder.enums import Arch, Bootloader, Compression, ImageFormat
from services.builder.steps import grub_disk, meta_adv
from services.catalog.versions import Version
from services.schematic.model import MetaValue
from services.shared.errors import InvalidArgument
from tests.unit.builder_disk.conftest import FakeTools
from tests.unit.builder_disk.test_xfs import LISTING

MIB = 1024 * 1024
CONF = "/usr/share/xfsprogs/mkfs/"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (Version(1, 7, 6), DiskQuirks(1000 * MIB, True, True, CONF + "lts_6.1.conf", False)),
        (Version(1, 9, 0), DiskQuirks(1000 * MIB, False, True, CONF + "lts_6.6.conf", False)),
        (Version(1, 10, 0, ("beta", 1)), DiskQuirks(1000 * MIB, False, True, CONF + "lts_6.12.conf", True)),
        (Version(1, 11, 0), DiskQuirks(2000 * MIB, False, True, CONF + "lts_6.12.conf", True)),
        (Version(1, 13, 0), DiskQuirks(2000 * MIB, False, True, CONF + "lts_6.18.conf", True)),
        (Version(1, 3, 0), DiskQuirks(1000 * MIB, True, False, CONF + "lts_6.1.conf", False)),
    ],
)
def test_quirks_for_version(version: Version, expected: DiskQuirks) -> None:
    assert DiskQuirks.for_version(version) == expected


Q110 = DiskQuirks.for_version(Version(1, 10, 0))


def _spec(tmp_path: Path, **kwargs: object) -> DiskSpec:
    files = {name: tmp_path / name for name in ("vmlinuz", "initramfs.xz", "uki.efi", "sd-boot.efi")}
    for path in files.values():
        path.write_bytes(path.name.encode())
    base: dict[str, object] = {
        "arch": Arch.AMD64, "version": "v1.10.0", "bootloader": Bootloader.DUAL_BOOT,
        "cmdline": "console=ttyS0", "disk_size": 2247 * MIB, "quirks": Q110,
        "kernel": files["vmlinuz"], "initramfs": files["initramfs.xz"], "uki": files["uki.efi"],
        "sd_boot": files["sd-boot.efi"],
    }  # fmt: skip
    return DiskSpec(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uki": None}, "need a UKI and systemd-boot"),
        ({"bootloader": Bootloader.SD_BOOT, "sd_boot": None}, "need a UKI and systemd-boot"),
        ({"bootloader": Bootloader.GRUB, "kernel": None, "initramfs": None, "uki": None}, "kernel \\+ initramfs"),
        ({"compression": Compression.TAR_GZ, "disk_format": ImageFormat.QCOW2}, "packs a raw disk"),
        ({"disk_size": 2104 * MIB}, "does not fit"),
        ({"arch": Arch.ARM64}, "not supported on arm64"),
        ({"bootloader": Bootloader.NONE}, "resolved bootloader"),
        ({"sector_size": 2048}, "512 or 4096"),
    ],
)
def test_bad_specs(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(tmp_path, **kwargs)


def test_grub_with_4k_sectors_is_refused(tmp_path: Path) -> None:
    """§14.9: GRUB's 100 MiB ESP has 25 600 clusters at 4 KiB sectors, too few for FAT32 (mtools refuses it)."""
    q = DiskQuirks.for_version(Version(1, 9, 0))
    with pytest.raises(InvalidArgument, match="fewer than 65525 clusters"):
        _spec(tmp_path, bootloader=Bootloader.GRUB, quirks=q, disk_size=1246 * MIB, sector_size=4096)
    assert _spec(tmp_path, sector_size=4096).sector_size == 4096  # the UKI-sized ESP is fine


def test_dual_boot_meta_rule(tmp_path: Path) -> None:
    """§7.1 step 1: amd64, no SecureBoot, ≥1.10, dual-boot → 0x11 = dual-boot after the profile's values."""
    user = (MetaValue(0x0C, "hello"),)
    assert _spec(tmp_path, meta_values=user).all_meta_values() == (*user, meta_adv.DUAL_BOOT_VALUE)
    assert _spec(tmp_path, meta_values=user, secureboot=True).all_meta_values() == user
    old = DiskQuirks.for_version(Version(1, 9, 0))
    assert _spec(tmp_path, meta_values=user, quirks=old).all_meta_values() == user
    assert _spec(tmp_path, bootloader=Bootloader.GRUB, meta_values=user).all_meta_values() == user


@pytest.fixture
def tools(fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Tools that leave plausible outputs behind: a core.img with its blocklist, qemu-img targets, xfs_db ls."""
    boot_img = tmp_path / "boot.img.src"
    boot_img.write_bytes(bytes(510) + b"\x55\xaa")
    monkeypatch.setattr(grub_disk, "BOOT_IMG", boot_img)

    def mkimage(argv: list[str]) -> None:
        core = bytearray(2048)
        struct.pack_into("<QHH", core, 0x1F4, 2, 3, 0x820)
        Path(argv[argv.index("--output") + 1]).write_bytes(bytes(core))

    fake_tools.handlers["grub-mkimage"] = mkimage
    fake_tools.handlers["xfs_db"] = lambda argv: LISTING.encode() if "-r" in argv else None
    fake_tools.handlers["qemu-img"] = lambda argv: Path(argv[-1]).write_bytes(b"converted")
    fake_tools.handlers["xz"] = lambda argv: Path(argv[-1]).rename(argv[-1] + ".xz")
    return fake_tools


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


async def test_dual_boot_flow(tmp_path: Path, tools: FakeTools) -> None:
    spec = _spec(tmp_path, meta_values=(MetaValue(0x0C, "hello"),))
    work, out = tmp_path / "work", tmp_path / "metal-amd64.raw"
    work.mkdir()
    await build_disk(spec, work, out)
    # GRUB BIOS core (no GRUB EFI for dual-boot), the ESP (FAT), BOOT (XFS + timestamp pinning)
    assert tools.tools() == ["grub-mkimage", "mkfs.vfat", "mmd", "mcopy", "mcopy", "mcopy", "mkfs.xfs", "xfs_db",
                             "xfs_db"]  # fmt: skip
    assert tools.argvs()[1][:-1] == ["mkfs.vfat", "-F", "32", "-n", "EFI", "--invariant"]  # no -s, no -S
    mmd = tools.argvs()[2]
    assert mmd[3:] == ["::/EFI", "::/EFI/Linux", "::/EFI/boot", "::/loader"]
    assert out.stat().st_size == 2247 * MIB and not (tmp_path / "metal-amd64.raw.partial").exists()
    layout = spec.layout()
    head = _read(out, 0, 1024)
    bios = layout.partition("BIOS")
    assert struct.unpack_from("<Q", head, 0x5C)[0] == bios.first_lba and head[0x66:0x68] == b"\x90\x90"
    assert head[446 + 4] == 0xEE and head[510:512] == b"\x55\xaa"
    assert struct.unpack_from("<Q", _read(out, bios.first_lba * 512 + 0x1F4, 8))[0] == bios.first_lba + 1
    assert head[512:520] == b"EFI PART"
    meta = layout.partition("META")
    assert meta_adv.parse_adv(_read(out, meta.offset(512), meta.size(512))) == {
        0x0C: b"hello", 0x11: b"dual-boot",
    }  # fmt: skip


async def test_sd_boot_4k_qcow2_flow(tmp_path: Path, tools: FakeTools) -> None:
    q = DiskQuirks.for_version(Version(1, 12, 0))
    spec = _spec(tmp_path, bootloader=Bootloader.SD_BOOT, quirks=q, disk_size=2246 * MIB, sector_size=4096,
                 disk_format=ImageFormat.QCOW2, disk_format_options="cluster_size=8k")  # fmt: skip
    work, out = tmp_path / "work", tmp_path / "metal-amd64.qcow2"
    work.mkdir()
    await build_disk(spec, work, out)
    assert tools.tools() == ["mkfs.vfat", "mmd", "mcopy", "mcopy", "mcopy", "qemu-img"]
    assert tools.argvs()[0][-3:-1] == ["-S", "4096"]
    assert tools.argvs()[-1] == ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=8k",
                                 str(work / "disk.raw.in"), str(work / "disk.raw")]  # fmt: skip
    assert out.read_bytes() == b"converted"


async def test_grub_ova_xz_flow(tmp_path: Path, tools: FakeTools) -> None:
    q = DiskQuirks.for_version(Version(1, 9, 0))
    spec = _spec(tmp_path, bootloader=Bootloader.GRUB, quirks=q, disk_size=1246 * MIB, version="v1.9.0",
                 disk_format=ImageFormat.OVA, compression=Compression.XZ)  # fmt: skip
    work, out = tmp_path / "work", tmp_path / "vmware-amd64.ova.xz"
    work.mkdir()
    await build_disk(spec, work, out)
    efi = work / "image" / "EFI" / "EFI" / "boot" / "BOOTX64.efi"
    assert tools.argvs()[:2] == [grub_disk.mkimage_bios_argv(work / "image" / "core.img"),
                                 grub_disk.mkimage_efi_argv(Arch.AMD64, efi)]  # fmt: skip
    assert tools.argvs()[-2:] == [
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
         str(work / "disk.raw"), str(work / "ova" / "disk.vmdk")],
        ["xz", "-0", "-f", "-T", "0", str(work / "disk.raw")],
    ]  # fmt: skip
    # the fake xz only renames, so the "compressed" output is the OVA tarball itself
    assert _read(out, 257, 5) == b"ustar" and spec.source_date_epoch == disk_asset.DEFAULT_SOURCE_DATE_EPOCH
