"""UKI and ISO builders against real tools, and real boots in qemu/TCG (imager spec §5, §6.1-§6.2, §12, §13).

The payload is a real Debian cloud kernel plus a busybox initramfs whose /init prints
`BOOT-CMDLINE: $(cat /proc/cmdline)` and powers off. Each boot asserts that line.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.builder.assets.iso import (
    GrubPayload,
    IsoKind,
    IsoOptions,
    SdBootPayload,
    build_iso,
    loader_conf,
)
from services.builder.assets.uki import UkiOptions, build_uki, os_release, talos_profiles
from services.builder.steps import fat, grub
from services.builder.steps.pe import APPENDED_CHARACTERISTICS, read_pe
from services.builder.steps.xorriso import IsoIdentity
from tests.support import qemu
from tests.support.debian_kernel import busybox_initramfs, debian_kernel
from tests.support.real_tools import require_file, require_tools

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SDBOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
EPOCH = 1559424892
VERSION = "v1.12.0"
IDENTITY = IsoIdentity(EPOCH, f"Talos-{VERSION}")
META = "MHhhPXsiYWRkcmVzc2VzIjpbXX07MHhjPWhlbGxv"  # imager spec §8.2 example
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "BOOT-CMDLINE: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""
BOOT_LINE = r"BOOT-CMDLINE: [^\n]*\n"
SDBOOT_MENU = r"Boot in \d+ s"  # press Enter instead of waiting Talos' 10 s loader timeout
pytestmark = pytest.mark.tools
TOOLS = ("xorriso", "xorrisofs", "osirrox", "grub-mkrescue", "mkfs.vfat", "mcopy", "mmd", "mattrib", "minfo",
         "mtype", "objdump", "objcopy")  # fmt: skip


@dataclass(frozen=True)
class Payload:
    kernel: Path
    initramfs: Path
    uki: Path
    cmdline: str
    work: Path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*argv: str | Path) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    require_tools(*TOOLS)
    require_file(STUB)
    require_file(SDBOOT)
    kernel = debian_kernel().vmlinuz
    work = tmp_path_factory.mktemp("uki-iso")
    # `;`, `&` and `$` must survive GRUB's parser (§5.2 quote); META rides on the cmdline (§5.6).
    marker = secrets.token_hex(6)
    cmdline = f"console=ttyS0 quiet talos.marker={marker} talos.environment=INSTALLER_META_BASE64={META} q=a;b&c$d"
    initramfs = busybox_initramfs(work / "initramfs.xz", INIT)
    uki = work / "uki.efi"
    options = UkiOptions(STUB, kernel, initramfs, cmdline, os_release("Talos", VERSION), EPOCH)
    asyncio.run(build_uki(options, uki))
    return Payload(kernel, initramfs, uki, cmdline, work)


def _iso_options(kind: IsoKind, p: Payload) -> IsoOptions:
    grub_payload = GrubPayload(p.kernel, p.initramfs, p.cmdline) if kind is not IsoKind.UEFI else None
    sdboot = SdBootPayload(SDBOOT, p.uki, VERSION) if kind is not IsoKind.GRUB else None
    return IsoOptions(kind, IDENTITY, grub=grub_payload, sdboot=sdboot)


def _build(kind: IsoKind, p: Payload, name: str) -> Path:
    out, work = p.work / f"{name}.iso", p.work / f"{name}.work"
    work.mkdir()
    asyncio.run(build_iso(_iso_options(kind, p), out, work))
    return out


@pytest.fixture(scope="module")
def isos(payload: Payload) -> dict[IsoKind, Path]:
    return {kind: _build(kind, payload, f"{kind}-1") for kind in IsoKind}


# --- UKI structure (§6.2, §12 "UKI") with binutils as the independent reader ---------------------------------


def test_uki_sections_per_objdump(payload: Payload) -> None:
    stub_names = [s.name for s in read_pe(STUB).sections]
    rows = re.findall(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\n\s+(.*)$",
                      _run("objdump", "-h", payload.uki), re.M)  # fmt: skip
    names = [r[0] for r in rows]
    assert names == [*stub_names, ".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    alignment = read_pe(STUB).section_alignment
    appended = rows[len(stub_names) :]
    vmas = [int(r[2], 16) for r in appended]
    assert vmas == sorted(vmas) and all(v % alignment == 0 for v in vmas)
    assert all(r[4].strip() == "CONTENTS, ALLOC, LOAD, READONLY, DATA" for r in appended)
    assert {read_pe(payload.uki).section(r[0]).characteristics for r in appended} == {APPENDED_CHARACTERISTICS}


def test_uki_section_contents_per_objcopy(payload: Payload) -> None:
    def section(name: str) -> bytes:
        out = payload.work / f"section{name}"
        _run("objcopy", "-O", "binary", f"--only-section={name}", payload.uki, out)
        return out.read_bytes()

    assert section(".cmdline") == payload.cmdline.encode()
    assert section(".linux") == payload.kernel.read_bytes()
    assert section(".initrd") == payload.initramfs.read_bytes()
    assert section(".osrel") == os_release("Talos", VERSION).encode()
    assert section(".uname").decode().startswith("6.")


def test_uki_with_profiles_per_objdump(payload: Payload, tmp_path: Path) -> None:
    profiles = talos_profiles("iso", payload.cmdline)
    options = UkiOptions(
        STUB,
        payload.kernel,
        payload.initramfs,
        payload.cmdline,
        "NAME=x\n",
        EPOCH,
        profiles=profiles,
        require_profile_aware_stub=False,  # Debian 12 ships systemd-stub 252
    )
    asyncio.run(build_uki(options, tmp_path / "uki.efi"))
    names = re.findall(r"^\s*\d+\s+(\S+)", _run("objdump", "-h", tmp_path / "uki.efi"), re.M)
    assert names[-4:] == [".initrd", ".profile", ".profile", ".cmdline"]


# --- ISO structure (§12 "ISO") -------------------------------------------------------------------------------


def test_iso_volume_identity(isos: dict[IsoKind, Path]) -> None:
    for iso in isos.values():
        info = _run("xorriso", "-indev", iso, "-pvd_info")
        assert re.search(r"Volume Id\s*: TALOS_V1_12_0\n", info)
        assert re.search(r"Volume Set Id\s*: Talos-v1\.12\.0\n", info)
        assert re.search(r"Creation Time\s*: 2019060121345200\n", info)


def test_grub_iso_layout(isos: dict[IsoKind, Path], payload: Payload) -> None:
    iso = isos[IsoKind.GRUB]
    report = _run("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert re.search(r"El Torito img path :\s+1\s+/boot/grub/i386-pc/eltorito.img", report)
    assert re.search(r"El Torito boot img :\s+2\s+UEFI", report)
    files = _run("xorriso", "-indev", iso, "-find", "/", "-type", "f")
    for path in ("/boot/vmlinuz", "/boot/initramfs.xz", "/boot/grub/grub.cfg"):
        assert f"'{path}'" in files
    cfg = payload.work / "grub.cfg"
    _run("osirrox", "-indev", iso, "-extract", "/boot/grub/grub.cfg", cfg)
    assert cfg.read_text() == grub.iso_grub_cfg(payload.cmdline, reset_option=True)
    # Debian's grub-mkrescue gives its EFI FAT image a random serial; ours is pinned to the epoch (§5.5).
    efi_lba = int(re.findall(r"El Torito boot img :\s+2\s+UEFI\s+y\s+none\s+\S+\s+\S+\s+\d+\s+(\d+)", report)[0])
    assert f"serial number: {EPOCH:08X}" in _run("minfo", "-i", f"{iso}@@{efi_lba * 2048}", "::")


def test_uefi_iso_layout(isos: dict[IsoKind, Path]) -> None:
    iso = isos[IsoKind.UEFI]
    report = _run("xorriso", "-indev", iso, "-report_el_torito", "plain", "-report_system_area", "plain")
    assert len(re.findall(r"El Torito boot img :", report)) == 1
    assert re.search(r"El Torito boot img :\s+1\s+UEFI", report)
    assert re.search(r"System area summary: MBR cyl-align-(on|all)\n", report) and "GPT" not in report
    assert re.search(r"MBR partition\s+:\s+1\s+0x00\s+0x83\s+64\s", report)
    start = int(re.findall(r"MBR partition\s+:\s+2\s+0x00\s+0xef\s+(\d+)\s", report)[0])
    _check_efiboot(iso, start * 512)


def test_hybrid_iso_layout(isos: dict[IsoKind, Path]) -> None:
    iso = isos[IsoKind.HYBRID]
    report = _run("xorriso", "-indev", iso, "-report_el_torito", "plain", "-report_system_area", "plain")
    assert re.search(r"El Torito img path :\s+1\s+/boot/grub/i386-pc/eltorito.img", report)
    assert re.search(r"El Torito boot img :\s+2\s+UEFI", report)
    assert re.search(r"GPT partname local :\s+2\s+Appended2", report)
    assert re.search(r"GPT type GUID\s+:\s+2\s+28732ac11ff8d211ba4b00a0c93ec93b", report)  # C12A7328-… (ESP)
    start = int(re.findall(r"GPT start and size :\s+2\s+(\d+)\s", report)[0])
    _check_efiboot(iso, start * 512)
    files = _run("xorriso", "-indev", iso, "-find", "/", "-type", "f")
    assert "'/boot/grub/grub.cfg'" in files and "'/efiboot.img'" not in files


def _check_efiboot(iso: Path, offset: int) -> None:
    image = f"{iso}@@{offset}"
    info = _run("minfo", "-i", image, "::")
    assert "serial number: 1234ABCD" in info and 'disk type="FAT32   "' in info and 'label="EFI        "' in info
    assert _run("mtype", "-i", image, "::/loader/loader.conf") == loader_conf("off")
    assert _run("mattrib", "-i", image, "::/loader/random-seed").split()[:2] == ["A", "R"]
    listing = _run("mdir", "-/", "-b", "-i", image, "::")
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing and f"::/EFI/Linux/Talos-{VERSION}.efi" in listing
    files = _run("xorriso", "-indev", iso, "-find", "/", "-type", "f")
    for path in ("/EFI/BOOT/BOOTX64.EFI", f"/EFI/Linux/Talos-{VERSION}.efi", "/loader/loader.conf"):
        assert f"'{path}'" in files
    assert "'/efiboot.img'" not in files


def test_isos_are_reproducible(isos: dict[IsoKind, Path], payload: Payload) -> None:
    """§13: same inputs and SOURCE_DATE_EPOCH → byte-identical ISOs (a second build in another scratch dir)."""
    for kind, first in isos.items():
        assert _sha256(_build(kind, payload, f"{kind}-2")) == _sha256(first), kind


# --- boots ---------------------------------------------------------------------------------------------------


def _boot(name: str, argv: list[str], work: Path, *, sdboot_menu: bool = False) -> qemu.BootResult:
    keys = [(SDBOOT_MENU, b"\r")] if sdboot_menu else []
    log = work / f"{name}.serial.log"
    result = qemu.boot(argv, log=log, success=BOOT_LINE, refusal=qemu.UEFI_NO_BOOT, timeout=90, keys=keys)
    assert result.outcome == "success", f"{name}: {result.outcome} after {result.duration:.1f}s\n{result.tail()}"
    return result


@pytest.mark.boot
@pytest.mark.parametrize(
    ("kind", "firmware"),
    [
        (IsoKind.GRUB, "bios"),  # §5.2: GRUB i386-pc from El Torito
        (IsoKind.GRUB, "uefi"),  # §5.2: GRUB x86_64-efi from grub-mkrescue's efi.img
        (IsoKind.UEFI, "uefi"),  # §5.3: sd-boot → UKI
        (IsoKind.HYBRID, "bios"),  # §5.4: GRUB i386-pc
        (IsoKind.HYBRID, "uefi"),  # §5.4: sd-boot from the appended ESP → UKI
    ],
)
def test_iso_boots(kind: IsoKind, firmware: str, isos: dict[IsoKind, Path], payload: Payload) -> None:
    argv = qemu.cdrom_argv(isos[kind])
    if firmware == "uefi":
        argv = [*qemu.ovmf_argv(payload.work), *argv]
    via_sdboot = kind is IsoKind.UEFI or (kind is IsoKind.HYBRID and firmware == "uefi")
    result = _boot(f"{kind}-{firmware}", argv, payload.work, sdboot_menu=via_sdboot)
    if via_sdboot:
        assert f"Talos ({VERSION})" in result.serial  # sd-boot's menu title comes from our .osrel
        assert result.lines("BOOT-CMDLINE: ") == [payload.cmdline]
    else:  # GRUB prepends BOOT_IMAGE and must have unquoted `;`, `&`, `$` back
        assert result.lines("BOOT-CMDLINE: ") == [f"BOOT_IMAGE=/boot/vmlinuz {payload.cmdline}"]


@pytest.mark.boot
def test_uki_boots_from_esp_under_ovmf(payload: Payload) -> None:
    esp_tree = payload.work / "esp"
    (esp_tree / "EFI" / "BOOT").mkdir(parents=True)
    (esp_tree / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(payload.uki.read_bytes())
    esp = payload.work / "esp.img"
    spec = fat.FatSpec("ESP", fat.efiboot_size(payload.uki.stat().st_size))
    asyncio.run(fat.make_fat_image(spec, esp, esp_tree, ["EFI"], source_date_epoch=EPOCH))
    argv = [*qemu.ovmf_argv(payload.work), *qemu.disk_argv(esp)]
    result = _boot("uki-esp-ovmf", argv, payload.work)
    assert result.lines("BOOT-CMDLINE: ") == [payload.cmdline]
