"""Secure Boot assets against real tools and real firmware (imager spec §5.3, §6.1-§6.6, lab REPORT §4).

sbsign/sbverify check the Authenticode signatures; the boots run OVMF's Secure Boot build
(`OVMF_CODE_4M.secboot.fd`, which needs SMM) from a blank variable store. Our own `.auth` files do the
enrollment: the UEFI ISO carries them in `loader/keys/auto/` with `secure-boot-enroll force`, systemd-boot
enrolls db, KEK and PK and resets (qemu exits under `-no-reboot`), then the same store boots enforcing:
the signed systemd-boot and UKI start ("Secure boot enabled"), an unsigned UKI is refused ("Access Denied").

Two flavors: Debian 12's systemd 252 stub and boot loader with the pre-1.10 layout (one `.pcrsig`), and
Debian 13's systemd 257 (multi-profile UKIs, one `.pcrsig` per profile) from the demo release cache.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_release.cache import CacheDir
from services.builder.assets.iso import IsoKind, IsoOptions, SdBootPayload, build_iso
from services.builder.assets.uki import UkiOptions, build_uki, os_release, talos_profiles
from services.builder.secureboot import build_signed_uki, sign_sdboot, write_enrollment_files
from services.builder.steps import fat
from services.builder.steps.xorriso import IsoIdentity
from services.signer.keys import KeySet, load_or_generate
from services.signer.pcr import Bank, BankSignature, predict_pcr11, section_maps, verify_pcr_policy
from tests.support import qemu
from tests.support.debian_kernel import busybox_initramfs, debian_kernel
from tests.support.real_tools import require_file, require_tools
from tests.unit.builder_secureboot.local_signer import InProcessSigner

EPOCH = 1559424892
VERSION = "v1.12.0"
EFI_DIR = Path("/usr/lib/systemd/boot/efi")
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "BOOT-CMDLINE: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""
BOOT_LINE = r"BOOT-CMDLINE: [^\n]*\n"
SDBOOT_MENU = r"Boot in \d+ s"
ENROLLED = r"Custom Secure Boot keys successfully enrolled"  # systemd-boot 257; 252 resets silently
ACCESS_DENIED = "Access Denied"
BOOT_TIMEOUT = 60  # a boot takes 5-12 s here; the timeout only bounds a hang
TOOLS = ("sbsign", "sbverify", "xorriso", "xorrisofs", "mkfs.vfat", "mcopy", "mmd", "mattrib")
pytestmark = pytest.mark.tools


@dataclass(frozen=True)
class Flavor:
    name: str
    stub: Path
    sdboot: Path
    profiles: bool  # Talos ≥1.10 layout: `.profile` sections, one `.pcrsig` each


@dataclass(frozen=True)
class Media:
    flavor: Flavor
    cmdline: str
    uki: Path  # signed
    unsigned_uki: Path
    sdboot: Path  # signed
    iso: Path  # UEFI ISO, `secure-boot-enroll force`, §5.3 Secure Boot extras
    work: Path


def _run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("sb-keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return load_or_generate(tmp_path_factory.mktemp("sb-other-keys"))


def _trixie(cache: CacheDir) -> Flavor:
    stub, sdboot = cache.boot / "linuxx64.trixie.efi.stub", cache.boot / "systemd-bootx64.trixie.efi"
    if not (stub.is_file() and sdboot.is_file()):
        # The demo release's boot files: systemd-boot-efi 257 from Debian 13 (devtools/demo_release/kernel.py).
        require_tools("apt-get", "dpkg-deb", "depmod")
        from devtools.demo_release.kernel import prepare

        asyncio.run(prepare(cache))
    return Flavor("trixie-systemd257", require_file(stub), require_file(sdboot), profiles=True)


@pytest.fixture(scope="module", params=["debian12", "trixie"])
def flavor(request: pytest.FixtureRequest) -> Flavor:
    if request.param == "trixie":
        return _trixie(request.getfixturevalue("demo_cache"))
    stub = require_file(EFI_DIR / "linuxx64.efi.stub")
    return Flavor("debian12-systemd252", stub, require_file(EFI_DIR / "systemd-bootx64.efi"), profiles=False)


async def _build(flavor: Flavor, keys: KeySet, work: Path) -> Media:
    signer = InProcessSigner(keys)
    cmdline = f"console=ttyS0 talos.marker={secrets.token_hex(6)}"
    options = UkiOptions(
        stub=flavor.stub,
        kernel=debian_kernel().vmlinuz,
        initrd=busybox_initramfs(work / "initramfs.xz", INIT),
        cmdline=cmdline,
        os_release=os_release("Talos", VERSION),
        source_date_epoch=EPOCH,
        profiles=talos_profiles("iso", cmdline) if flavor.profiles else (),
    )
    uki = (await build_signed_uki(options, signer, work / "uki.efi", work)).path
    unsigned = work / "uki.unsigned.efi"
    await build_uki(options, unsigned)
    sdboot = await sign_sdboot(signer, flavor.sdboot, work / "systemd-boot.efi.signed")
    files = await write_enrollment_files(signer, signer, work / "keys", include_well_known=False)
    payload = SdBootPayload(sdboot, uki, VERSION, secure_boot_enroll="force", extra_files=files.iso_extra_files())
    iso = work / "secureboot.iso"
    (work / "iso-work").mkdir()
    options_iso = IsoOptions(IsoKind.UEFI, IsoIdentity(EPOCH, f"Talos-{VERSION}"), sdboot=payload)
    await build_iso(options_iso, iso, work / "iso-work")
    return Media(flavor, cmdline, uki, unsigned, sdboot, iso, work)


@pytest.fixture(scope="module")
def media(flavor: Flavor, keys: KeySet, tmp_path_factory: pytest.TempPathFactory) -> Media:
    require_tools(*TOOLS)
    return asyncio.run(_build(flavor, keys, tmp_path_factory.mktemp(flavor.name)))


# --- signatures and structure ------------------------------------------------------------------------------


def test_sbverify_accepts_only_our_certificate(media: Media, keys: KeySet, other_keys: KeySet) -> None:
    """§6.4 / §12: `sbverify --cert` accepts the signed UKI and systemd-boot, nothing else."""
    ours, theirs = keys.secureboot.cert_path, other_keys.secureboot.cert_path
    for signed in (media.uki, media.sdboot):
        result = _run("sbverify", "--cert", ours, signed, check=False)
        assert result.returncode == 0 and "Signature verification OK" in result.stdout, result.stderr
        assert _run("sbverify", "--cert", theirs, signed, check=False).returncode != 0
    for unsigned in (media.unsigned_uki, media.flavor.sdboot):
        assert _run("sbverify", "--cert", ours, unsigned, check=False).returncode != 0


def test_pcrsig_sections_verify(media: Media, keys: KeySet) -> None:
    """§6.1 signed order and §6.3 signatures, read back with pefile and checked against predictions."""
    pefile: Any = pytest.importorskip("pefile", reason="pefile (test-only dependency) is not installed")
    pe = pefile.PE(str(media.uki))
    try:
        sections = [(s.Name.rstrip(b"\0").decode(), s.get_data()[: s.Misc_VirtualSize]) for s in pe.sections]
    finally:
        pe.close()
    names = [name for name, _ in sections]
    tail = [".profile", ".pcrsig", ".profile", ".cmdline", ".pcrsig"] if media.flavor.profiles else [".pcrsig"]
    assert names[names.index(".osrel") :] == [".osrel", ".cmdline", ".uname", ".pcrpkey", ".linux", ".initrd", *tail]
    public_key_pem = dict(sections)[".pcrpkey"]
    assert public_key_pem == keys.pcr.public_key_pem()
    documents = [json.loads(data) for name, data in sections if name == ".pcrsig"]
    maps = section_maps(sections)
    assert len(documents) == len(maps)
    for document, covered in zip(documents, maps, strict=True):
        for bank in Bank:
            (entry,) = document[bank.value]
            _, value = predict_pcr11(covered, bank)[-1]
            signature = BankSignature(tuple(entry["pcrs"]), entry["pkfp"], entry["pol"], entry["sig"])
            verify_pcr_policy(public_key_pem, bank, value, signature)


def test_iso_carries_secure_boot_extras(media: Media, keys: KeySet) -> None:
    """§5.3: certificate and auto-enrollment databases on the ISO, `secure-boot-enroll` as asked."""
    files = _run("xorriso", "-indev", media.iso, "-find", "/", "-type", "f").stdout
    for path in ("/EFI/keys/uki-signing-cert.der", "/loader/keys/auto/PK.auth", "/loader/keys/auto/KEK.auth",
                 "/loader/keys/auto/db.auth", "/EFI/BOOT/BOOTX64.EFI", f"/EFI/Linux/Talos-{VERSION}.efi"):  # fmt: skip
        assert f"'{path}'" in files
    der = media.work / "cert.der"
    _run("osirrox", "-indev", media.iso, "-extract", "/EFI/keys/uki-signing-cert.der", der)
    assert der.read_bytes() == keys.secureboot.cert_der()
    conf = media.work / "loader.conf"
    _run("osirrox", "-indev", media.iso, "-extract", "/loader/loader.conf", conf)
    assert conf.read_text().endswith("secure-boot-enroll force\n")


# --- enforced Secure Boot under OVMF -----------------------------------------------------------------------


def _boot(media: Media, name: str, variables: Path, drive: list[str], **kwargs: Any) -> qemu.BootResult:
    log = media.work / f"{name}.serial.log"
    return qemu.boot([*qemu.secboot_argv(variables), *drive], log=log, timeout=BOOT_TIMEOUT, **kwargs)


@pytest.fixture(scope="module")
def enrolled_vars(media: Media, keys: KeySet) -> Path:
    """A variable store with our PK/KEK/db, enrolled by systemd-boot from the ISO's `.auth` files."""
    require_tools(qemu.QEMU)
    variables = media.work / "OVMF_VARS.enrolled.fd"
    shutil.copyfile(require_file(qemu.OVMF_VARS), variables)  # blank store: Setup Mode
    result = _boot(media, "enroll", variables, qemu.cdrom_argv(media.iso), success=ENROLLED)
    assert "Enrolling secure boot keys from directory: \\loader\\keys\\auto" in result.serial, result.tail()
    assert "Failed to write" not in result.serial, result.tail()
    assert result.outcome in ("success", "exited"), f"{result.outcome}\n{result.tail()}"
    # db, KEK and PK each hold our DER certificate now.
    assert variables.read_bytes().count(keys.secureboot.cert_der()) >= 3
    return variables


def _copy(variables: Path, name: str) -> Path:
    copy = variables.with_name(name)
    shutil.copyfile(variables, copy)
    return copy


@pytest.mark.boot
def test_enforced_secure_boot_starts_our_signed_uki(media: Media, enrolled_vars: Path) -> None:
    variables = _copy(enrolled_vars, "OVMF_VARS.boot.fd")
    result = _boot(
        media, "secure-boot", variables, qemu.cdrom_argv(media.iso),
        success=BOOT_LINE, refusal=qemu.UEFI_NO_BOOT, keys=[(SDBOOT_MENU, b"\r")],
    )  # fmt: skip
    assert result.outcome == "success", result.tail()
    assert "secureboot: Secure boot enabled" in result.serial
    assert "Loaded X.509 cert 'Image Factory SecureBoot" in result.serial  # the kernel read our db
    assert result.lines("BOOT-CMDLINE: ") == [media.cmdline]


@pytest.mark.boot
def test_enforced_secure_boot_refuses_foreign_ukis(media: Media, enrolled_vars: Path, other_keys: KeySet) -> None:
    """The firmware itself refuses a UKI started as the default boot loader: unsigned (systemd 252 flavor)
    or signed by another key (systemd 257 flavor)."""
    if media.flavor.profiles:
        rejected = media.work / "uki.other-key.efi"
        asyncio.run(InProcessSigner(other_keys).sign_pe(media.unsigned_uki, rejected))
    else:
        rejected = media.unsigned_uki
    tree = media.work / "esp-rejected"
    (tree / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copyfile(rejected, tree / "EFI" / "BOOT" / "BOOTX64.EFI")
    esp = media.work / "esp-rejected.img"
    spec = fat.FatSpec("ESP", fat.efiboot_size(rejected.stat().st_size))
    asyncio.run(fat.make_fat_image(spec, esp, tree, ["EFI"], source_date_epoch=EPOCH))
    variables = _copy(enrolled_vars, "OVMF_VARS.refuse.fd")
    result = _boot(media, "rejected", variables, qemu.disk_argv(esp), success=BOOT_LINE, refusal=qemu.UEFI_NO_BOOT)
    assert result.outcome == "refused", result.tail()
    assert ACCESS_DENIED in result.serial
