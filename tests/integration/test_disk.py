"""Disk images against real tools, and real boots in qemu/TCG (imager spec §7, §8.3, §12 "Disk image", §13).

Independent readers: sgdisk/sfdisk/fdisk for the GPT, mtools for the ESP, xfs_db/xfs_repair/grub-fstest for
BOOT, qemu-img for the formats, tar/xz for the packaging. The payload is a real Debian cloud kernel plus a
busybox initramfs whose /init prints `BOOT-CMDLINE: $(cat /proc/cmdline)` and powers off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from services.builder.assets.disk import DiskQuirks, DiskSpec, build_disk
from services.builder.assets.uki import UkiOptions, build_uki, os_release
from services.builder.enums import Arch, Bootloader, Compression, ImageFormat
from services.builder.steps import compress, grub_disk, meta_adv
from services.builder.steps.gpt import guid_from_label
from services.catalog.versions import Version
from services.schematic.model import MetaValue
from tests.support import qemu
from tests.support.debian_kernel import busybox_initramfs, debian_kernel
from tests.support.real_tools import require_file, require_tools

MIB = 1024 * 1024
STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SDBOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
EPOCH = 1559424892
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "BOOT-CMDLINE: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""
BOOT_LINE = r"BOOT-CMDLINE: [^\n]*\n"
SDBOOT_MENU = r"Boot in \d+ s"  # press Enter instead of waiting the 10 s loader timeout
USER_META = MetaValue(0x0C, "hello")
TOOLS = ("sgdisk", "sfdisk", "fdisk", "mkfs.vfat", "mcopy", "mmd", "minfo", "mdir", "mtype", "mkfs.xfs", "xfs_db",
         "xfs_repair", "grub-mkimage", "grub-fstest", "qemu-img", "tar", "xz", "zstd", "gzip")  # fmt: skip
pytestmark = pytest.mark.tools


@dataclass(frozen=True)
class Payload:
    kernel: Path
    initramfs: Path
    uki: Path
    cmdline: str
    work: Path


@dataclass(frozen=True)
class Built:
    spec: DiskSpec
    path: Path


def _run(*argv: str | Path) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, check=True)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    require_tools(*TOOLS)
    for path in (STUB, SDBOOT, grub_disk.BOOT_IMG, Path("/usr/lib/grub/x86_64-efi/linux.mod")):
        require_file(path)
    kernel = debian_kernel().vmlinuz
    work = tmp_path_factory.mktemp("disk")
    # `;`, `&` and `$` must survive GRUB's parser (§7.4 quote)
    cmdline = f"console=ttyS0 talos.marker={secrets.token_hex(6)} q=a;b&c$d"
    initramfs = busybox_initramfs(work / "initramfs.xz", INIT)
    uki = work / "uki.efi"
    # Debian 12's systemd-stub 252 ignores `.profile`, so the test UKI has none (the disk code never looks inside).
    asyncio.run(build_uki(UkiOptions(STUB, kernel, initramfs, cmdline, os_release("Talos", "v1.10.0"), EPOCH), uki))
    return Payload(kernel, initramfs, uki, cmdline, work)


def _spec(p: Payload, version: Version, bootloader: Bootloader, mib: int, **kwargs: object) -> DiskSpec:
    base = DiskSpec(
        Arch.AMD64, f"v{version.major}.{version.minor}.{version.patch}", bootloader, p.cmdline, mib * MIB,
        DiskQuirks.for_version(version), kernel=p.kernel, initramfs=p.initramfs, uki=p.uki, sd_boot=SDBOOT,
        source_date_epoch=EPOCH,
    )  # fmt: skip
    return replace(base, **kwargs)  # type: ignore[arg-type]


def _build(p: Payload, name: str, spec: DiskSpec, suffix: str) -> Built:
    work = p.work / f"{name}.work"
    work.mkdir()
    out = p.work / f"{name}{suffix}"
    asyncio.run(build_disk(spec, work, out))
    return Built(spec, out)


@pytest.fixture(scope="module")
def images(payload: Payload) -> dict[str, Built]:
    p, v110, v19 = payload, Version(1, 10, 0), Version(1, 9, 0)
    grub = _spec(p, v19, Bootloader.GRUB, 1246)
    specs = {
        "dual": (_spec(p, v110, Bootloader.DUAL_BOOT, 2247, meta_values=(USER_META,)), ".raw"),
        "grub": (grub, ".raw"),
        "sd4k": (_spec(p, Version(1, 12, 0), Bootloader.SD_BOOT, 2246, sector_size=4096), ".raw"),
        "dual4k": (_spec(p, Version(1, 11, 0), Bootloader.DUAL_BOOT, 4247, sector_size=4096), ".raw"),  # metal-4k
        "legacy": (_spec(p, Version(1, 7, 0), Bootloader.GRUB, 1500), ".raw"),
        "qcow2": (replace(grub, disk_format=ImageFormat.QCOW2, disk_format_options="cluster_size=8k"), ".qcow2"),
        "vhd": (replace(grub, disk_format=ImageFormat.VHD, disk_format_options="subformat=fixed,force_size"), ".vhd"),
        "ova": (replace(grub, disk_format=ImageFormat.OVA), ".ova"),
        "gcp": (replace(grub, compression=Compression.TAR_GZ), ".raw.tar.gz"),
        "aws": (replace(grub, compression=Compression.XZ), ".raw.xz"),
    }
    return {name: _build(p, name, spec, suffix) for name, (spec, suffix) in specs.items()}


def _extract(disk: Path, offset: int, size: int, dest: Path) -> Path:
    """Copy a partition out of the image, reading only its data extents (SEEK_DATA) and keeping the holes."""
    with disk.open("rb") as src, dest.open("wb") as out:
        out.truncate(size)
        fd, pos, end = src.fileno(), offset, offset + size
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: nothing but a hole left
                break
            hole = min(os.lseek(fd, pos, os.SEEK_HOLE), end)
            while pos < hole:
                chunk = os.pread(fd, min(MIB, hole - pos), pos)
                os.pwrite(out.fileno(), chunk, pos - offset)
                pos += len(chunk)
    return dest


def _partition(built: Built, label: str) -> tuple[int, int]:
    part = built.spec.layout().partition(label)
    sector = built.spec.sector_size
    return part.offset(sector), part.size(sector)


# --- GPT (§7.2, §7.3) ----------------------------------------------------------------------------------------


def test_gpt_per_sgdisk(images: dict[str, Built]) -> None:
    built = images["dual"]
    printed = _run("sgdisk", "-p", built.path)
    assert "Disk identifier (GUID): D92D45B3-CDE9-8760-BE9F-A2A71FAC8D11" in printed
    assert "First usable sector is 2048, last usable sector is 4601822" in printed
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+.*?\s+([0-9A-F]{4})\s+(\S+)$", printed, re.M)
    assert rows == [
        ("1", "2048", "2256895", "EF00", "EFI"), ("2", "2256896", "2258943", "EF02", "BIOS"),
        ("3", "2258944", "4306943", "8300", "BOOT"), ("4", "4306944", "4308991", "8300", "META"),
    ]  # fmt: skip
    assert "No problems found" in _run("sgdisk", "-v", built.path)
    for number, label, flags in ((1, "EFI", "0"), (2, "BIOS", "4"), (3, "BOOT", "0"), (4, "META", "0")):
        info = _run("sgdisk", "-i", str(number), built.path)
        assert f"Partition unique GUID: {str(guid_from_label(label)).upper()}" in info
        assert f"Attribute flags: {flags.rjust(16, '0')}" in info
        assert f"Partition name: '{label}'" in info


def test_gpt_per_sfdisk_with_data_partitions(images: dict[str, Built]) -> None:
    """<1.8: STATE and EPHEMERAL exist, without any filesystem (zeros), EPHEMERAL takes the rest."""
    built = images["legacy"]
    dump = _run("sfdisk", "-d", built.path)
    assert "label-id: D92D45B3-CDE9-8760-BE9F-A2A71FAC8D11" in dump
    assert "first-lba: 2048\n" in dump and "last-lba: 3071966\n" in dump
    rows = re.findall(r"start=\s*(\d+), size=\s*(\d+), type=([\w-]+), uuid=([\w-]+), name=\"(\w+)\"(.*)", dump)
    expected = [(p.label, p.first_lba, p.last_lba - p.first_lba + 1) for p in built.spec.layout().partitions]
    assert [(r[4], int(r[0]), int(r[1])) for r in rows] == expected
    assert [r[4] for r in rows] == ["EFI", "BIOS", "BOOT", "META", "STATE", "EPHEMERAL"]
    assert rows[1][5] == ', attrs="LegacyBIOSBootable"' and rows[0][2] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    with built.path.open("rb") as f:
        for label in ("STATE", "EPHEMERAL"):
            offset, _ = _partition(built, label)
            assert os.pread(f.fileno(), MIB, offset) == bytes(MIB), label


ESP_TYPE, BIOS_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "21686148-6449-6E6F-744E-656564454649"
DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


@pytest.mark.parametrize(
    ("name", "last_usable", "expected"),
    [
        ("sd4k", 574970, [("1", "256", "538111", ESP_TYPE, "EFI"), ("2", "538112", "538367", DATA_TYPE, "META")]),
        ("dual4k", 1087226, [  # §7.3 worked layout "metal-4k amd64 ≥1.11"
            ("1", "256", "538111", ESP_TYPE, "EFI"), ("2", "538112", "538367", BIOS_TYPE, "BIOS"),
            ("3", "538368", "1050367", DATA_TYPE, "BOOT"), ("4", "1050368", "1050623", DATA_TYPE, "META"),
        ]),
    ],
)  # fmt: skip
def test_gpt_4k_per_fdisk(
    images: dict[str, Built], name: str, last_usable: int, expected: list[tuple[str, ...]]
) -> None:
    """sfdisk 2.38 has no `--sector-size`; `fdisk -b 4096 -x` reads the 4 KiB GPT (and its CRCs)."""
    listing = _run("fdisk", "-b", "4096", "-x", images[name].path)
    assert "Disk identifier: D92D45B3-CDE9-8760-BE9F-A2A71FAC8D11" in listing
    assert "First usable LBA: 256\n" in listing and f"Last usable LBA: {last_usable}\n" in listing
    assert "Partition entries starting LBA: 2\n" in listing and "Partition entries ending LBA: 5\n" in listing
    rows = re.findall(r"^\S+?(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+([\w-]+)\s+([\w-]+)\s+(\w+)", listing, re.M)
    assert [(n, s, e, t, label) for n, s, e, t, _, label in rows] == expected
    assert [guid for *_, guid, _ in rows] == [str(guid_from_label(r[4])).upper() for r in expected]


def test_pmbr_and_grub_bios_stages(images: dict[str, Built], tmp_path: Path) -> None:
    """§12: MBR code = Debian's boot.img with LE64@0x5C = BIOS LBA and `90 90` at 0x66; BIOS starts with a
    fresh grub-mkimage core.img whose LE64@0x1F4 = BIOS LBA + 1."""
    built = images["dual"]
    bios_lba = built.spec.layout().partition("BIOS").first_lba
    with built.path.open("rb") as f:
        mbr = os.pread(f.fileno(), 512, 0)
        core = os.pread(f.fileno(), MIB, bios_lba * 512)
    assert mbr[:446] == grub_disk.patch_boot_img(grub_disk.BOOT_IMG.read_bytes(), bios_lba)[:446]
    assert mbr[446:462] == bytes.fromhex("00000200eeffffff01000000") + (2247 * 2048 - 1).to_bytes(4, "little")
    assert mbr[510:] == b"\x55\xaa"
    _run(*grub_disk.mkimage_bios_argv(tmp_path / "core.img"))
    fresh = grub_disk.patch_core_img((tmp_path / "core.img").read_bytes(), bios_lba)
    assert core[: len(fresh)] == fresh and core[len(fresh) :] == bytes(MIB - len(fresh))


# --- ESP (§7.3, §7.5) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("dual", ["EFI/Linux/Talos-v1.10.0.efi", "EFI/boot/BOOTX64.efi", "loader/loader.conf"]),
        ("sd4k", ["EFI/Linux/Talos-v1.12.0.efi", "EFI/boot/BOOTX64.efi", "loader/loader.conf"]),
        ("grub", ["EFI/boot/BOOTX64.efi"]),
    ],
)
def test_esp_per_mtools(
    images: dict[str, Built], payload: Payload, tmp_path: Path, name: str, files: list[str]
) -> None:
    built = images[name]
    offset, size = _partition(built, "EFI")
    esp = f"{built.path}@@{offset}"
    info = _run("minfo", "-i", esp, "::")
    assert "serial number: 1234ABCD" in info and 'disk type="FAT32   "' in info and 'label="EFI        "' in info
    assert f"sector size: {built.spec.sector_size} bytes" in info
    listing = _run("mdir", "-/", "-b", "-i", esp, "::").split()
    assert sorted(e.removeprefix("::/") for e in listing if not e.endswith("/")) == files
    copied = {f: tmp_path / f.replace("/", "_") for f in files}
    for rel, dest in copied.items():
        _run("mcopy", "-n", "-i", esp, f"::/{rel}", dest)
    if name == "grub":  # GRUB's EFI image, as a fresh grub-mkimage makes it (§7.4 step 3)
        _run(*grub_disk.mkimage_efi_argv(Arch.AMD64, tmp_path / "grub.efi"))
        assert copied["EFI/boot/BOOTX64.efi"].read_bytes() == (tmp_path / "grub.efi").read_bytes()
    else:
        assert copied["EFI/boot/BOOTX64.efi"].read_bytes() == SDBOOT.read_bytes()
        assert copied[files[0]].read_bytes() == payload.uki.read_bytes()
        assert copied["loader/loader.conf"].read_text() == "# systemd-boot configuration\n\ntimeout 10\n"
    # the FAT survives a check (dosfstools has no --offset: check an extracted copy)
    if built.spec.sector_size == 512:
        _run("fsck.vfat", "-n", _extract(built.path, offset, size, tmp_path / "esp.img"))


# --- BOOT (§7.3 XFS, §7.4 grub.cfg) --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rmapbt"), [("dual", True), ("legacy", False), ("dual4k", True)])
def test_boot_xfs(images: dict[str, Built], payload: Payload, tmp_path: Path, name: str, rmapbt: bool) -> None:
    built = images[name]
    boot = _extract(built.path, *_partition(built, "BOOT"), tmp_path / "BOOT.img")
    info = _run("xfs_db", "-r", "-c", "sb 0", "-c", "p uuid sectsize", "-c", "label", "-c", "version", boot)
    assert "uuid = 24c73076-4092-85dd-9d98-686a2dbf6d81" in info and 'label = "BOOT"' in info
    assert f"sectsize = {built.spec.sector_size}" in info
    assert ("RMAPBT" in info) is rmapbt and "NREXT64" not in info and "BIGTIME" in info
    _run("xfs_repair", "-n", "-f", boot)
    # every inode carries SOURCE_DATE_EPOCH (§13), so the bytes do not depend on the build time
    times = _run("xfs_db", "-r", "-c", "inode 128", "-c", "p core.mtime.sec core.ctime.sec v3.crtime.sec", boot)
    assert times.count("Sat Jun  1 21:34:52 2019") == 3
    assert _run("grub-fstest", boot, "ls", "/A").split() == ["initramfs.xz", "vmlinuz"]
    cfg = grub_disk.disk_grub_cfg(payload.cmdline, name="Talos", version=built.spec.version,
                                  reset_option=True)  # fmt: skip
    assert _run("grub-fstest", boot, "cat", "/grub/grub.cfg") == cfg
    _run("grub-fstest", boot, "cp", "/A/vmlinuz", tmp_path / "vmlinuz")
    assert (tmp_path / "vmlinuz").read_bytes() == payload.kernel.read_bytes()


# --- META (§8.3) ---------------------------------------------------------------------------------------------


def test_meta_partitions(images: dict[str, Built]) -> None:
    for name, expected in (("dual", {0x0C: b"hello", 0x11: b"dual-boot"}), ("grub", None)):
        offset, size = _partition(images[name], "META")
        with images[name].path.open("rb") as f:
            data = os.pread(f.fileno(), size, offset)
        if expected is None:
            assert data == bytes(size)
        else:
            assert meta_adv.parse_adv(data) == expected


# --- formats and post-processing (§7.8, §7.9) ----------------------------------------------------------------


def _info(path: Path, fmt: str) -> dict[str, object]:
    return dict(json.loads(_run("qemu-img", "info", "-f", fmt, "--output=json", path)))


@pytest.mark.parametrize(("name", "fmt"), [("qcow2", "qcow2"), ("vhd", "vpc")])
def test_qemu_formats(images: dict[str, Built], name: str, fmt: str) -> None:
    path = images[name].path
    info = _info(path, fmt)
    assert info["format"] == fmt and info["virtual-size"] == 1246 * MIB
    if fmt == "qcow2":
        assert info["cluster-size"] == 8192
        assert "No errors were found" in _run("qemu-img", "check", "-f", "qcow2", path)
    assert "Images are identical" in _run("qemu-img", "compare", "-f", "raw", "-F", fmt, images["grub"].path, path)


def test_ova(images: dict[str, Built], tmp_path: Path) -> None:
    ova = images["ova"].path
    assert _run("tar", "-tf", ova).split() == ["disk.ovf", "disk.mf", "disk.vmdk"]
    with tarfile.open(ova) as tar:
        tar.extractall(tmp_path, filter="data")
    vmdk, ovf = tmp_path / "disk.vmdk", (tmp_path / "disk.ovf").read_text()
    sha = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("disk.vmdk", "disk.ovf")}
    mf = (tmp_path / "disk.mf").read_text()
    assert mf == f"SHA256(disk.vmdk)= {sha['disk.vmdk']}\nSHA256(disk.ovf)= {sha['disk.ovf']}\n"
    assert f'ovf:size="{vmdk.stat().st_size}"' in ovf and 'ovf:capacity="1246"' in ovf
    info = _info(vmdk, "vmdk")
    assert info["virtual-size"] == 1246 * MIB
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"  # type: ignore[index]
    assert "No errors were found" in _run("qemu-img", "check", "-f", "vmdk", vmdk)
    assert "Images are identical" in _run("qemu-img", "compare", "-f", "raw", "-F", "vmdk", images["grub"].path, vmdk)


def test_gcp_tarball(images: dict[str, Built], tmp_path: Path) -> None:
    listing = _run("tar", "-tzvf", images["gcp"].path).splitlines()
    assert len(listing) == 1
    assert re.fullmatch(rf"-rw-r--r-- 0/0\s+{1246 * MIB} 2019-06-01 21:34 disk.raw", listing[0])
    _run("tar", "-xzf", images["gcp"].path, "-C", tmp_path)
    assert "Images are identical" in _run("qemu-img", "compare", "-f", "raw", "-F", "raw", images["grub"].path,
                                          tmp_path / "disk.raw")  # fmt: skip


def test_xz_image(images: dict[str, Built]) -> None:
    path = images["aws"].path
    _run("xz", "-t", path)
    totals = next(line for line in _run("xz", "--robot", "-l", path).splitlines() if line.startswith("totals"))
    assert int(totals.split("\t")[4]) == 1246 * MIB


@pytest.mark.parametrize(("compression", "check"), [(Compression.ZST, "zstd"), (Compression.GZ, "gzip")])
def test_compressions(tmp_path: Path, compression: Compression, check: str) -> None:
    path = tmp_path / "metal-amd64.raw"
    with path.open("wb") as f:
        f.truncate(64 * MIB)
        f.seek(5 * MIB)
        f.write(os.urandom(MIB))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = asyncio.run(compress.post_process(path, compression, source_date_epoch=EPOCH))
    assert result.name == f"metal-amd64.raw{compression.suffix}" and not path.exists()
    _run(check, "-t", result)
    restored = subprocess.run([check, "-d", "-c", str(result)], capture_output=True, check=True, timeout=60).stdout
    assert hashlib.sha256(restored).hexdigest() == digest


def test_raw_is_reproducible(images: dict[str, Built], payload: Payload) -> None:
    """§13: the same inputs give the same bytes (another scratch dir, later build time)."""
    again = _build(payload, "dual-again", images["dual"].spec, ".raw")
    for built in (images["dual"], again):
        assert built.path.stat().st_size == 2247 * MIB
    with ThreadPoolExecutor(2) as pool:  # hashlib and file reads release the GIL: both hashes at once
        first, second = pool.map(_sha256, (images["dual"].path, again.path))
    assert first == second


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


# --- boots ---------------------------------------------------------------------------------------------------


@pytest.mark.boot
@pytest.mark.parametrize(
    ("name", "firmware", "via"),
    [
        ("dual", "bios", "grub"),  # §7.6: SeaBIOS → boot.img → core.img in BIOS → grub.cfg on XFS
        ("dual", "uefi", "sd-boot"),  # §7.6: OVMF → systemd-boot → UKI on the ESP
        ("grub", "uefi", "grub"),  # §7.4: OVMF → GRUB EFI → grub.cfg on XFS
        ("qcow2", "uefi", "grub"),  # §7.8: the qcow2 conversion boots the same way
        ("dual4k", "uefi", "sd-boot"),  # §7.7: a 4 KiB-sector disk (GPT, FAT) on a 4 KiB-block virtio disk
    ],
)
def test_disk_boots(images: dict[str, Built], payload: Payload, name: str, firmware: str, via: str) -> None:
    built = images[name]
    fmt = "qcow2" if name == "qcow2" else "raw"
    block = built.spec.sector_size
    argv = [
        "-drive", f"file={built.path},format={fmt},if=none,id=disk0,snapshot=on",
        "-device", f"virtio-blk-pci,drive=disk0,logical_block_size={block},physical_block_size={block}",
    ]  # fmt: skip
    if firmware == "uefi":
        argv = [*qemu.ovmf_argv(payload.work), *argv]
    keys = [(SDBOOT_MENU, b"\r")] if via == "sd-boot" else []
    log = payload.work / f"boot-{name}-{firmware}.serial.log"
    result = qemu.boot(argv, log=log, success=BOOT_LINE, refusal=qemu.UEFI_NO_BOOT, timeout=120, keys=keys)
    assert result.outcome == "success", (
        f"{name}/{firmware}: {result.outcome} after {result.duration:.1f}s\n{result.tail()}"
    )
    if via == "sd-boot":
        assert "Talos (v1.10.0)" in result.serial  # sd-boot's menu entry comes from the UKI's .osrel
        assert result.lines("BOOT-CMDLINE: ") == [payload.cmdline]
    else:  # GRUB prepends BOOT_IMAGE and must have unquoted `;`, `&`, `$` back
        assert result.lines("BOOT-CMDLINE: ") == [f"BOOT_IMAGE=/A/vmlinuz {payload.cmdline}"]
