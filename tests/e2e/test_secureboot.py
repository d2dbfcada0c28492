"""Secure Boot assets through the mesh: signed by the signer service, enrolled and enforced under OVMF."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.demo_release.boot import BootReport
from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.e2e.test_boot_initramfs import SCHEMATIC, create_schematic, download
from tests.support import qemu
from tests.support.real_tools import require_file, require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry]

SB_SCHEMATIC = SCHEMATIC.replace(b"  extraKernelArgs:\n", b"  extraKernelArgs:\n    - console=ttyS0\n") + (
    b"  secureboot:\n    enrollKeys: force\n"
)
ENROLLED = r"Custom Secure Boot keys successfully enrolled"


def test_secure_boot_uki_is_signed_by_the_served_certificate(demo_mesh: Mesh, tmp_path: Path) -> None:
    require_tools("sbverify")
    sid = create_schematic(demo_mesh, SB_SCHEMATIC)
    uki = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64-secureboot-uki.efi", tmp_path / "uki.efi")
    cert = tmp_path / "cert.pem"
    cert.write_bytes(http_get(f"{demo_mesh.url}/secureboot/signing-cert.pem")[2])
    verified = subprocess.run(["sbverify", "--cert", str(cert), str(uki)], capture_output=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert b".pcrsig" in uki.read_bytes()[:4096] and b".pcrpkey" in uki.read_bytes()[:4096]


@pytest.mark.boot
def test_secure_boot_iso_enrolls_keys_then_boots_enforced(demo_mesh: Mesh, tmp_path: Path) -> None:
    require_tools(qemu.QEMU)
    sid = create_schematic(demo_mesh, SB_SCHEMATIC)
    iso = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64-secureboot.iso", tmp_path / "sb.iso")
    variables = tmp_path / "OVMF_VARS.fd"
    shutil.copyfile(require_file(qemu.OVMF_VARS), variables)  # a blank store: Setup Mode
    enroll = qemu.boot(
        [*qemu.secboot_argv(variables), *qemu.cdrom_argv(iso)],
        log=tmp_path / "enroll.log",
        success=ENROLLED,
        timeout=120,
    )
    assert enroll.outcome in ("success", "exited"), enroll.tail()
    booted = qemu.boot(
        [*qemu.secboot_argv(variables), *qemu.cdrom_argv(iso)],
        log=tmp_path / "boot.log",
        success=r"DEMO-DONE",
        refusal=qemu.UEFI_NO_BOOT,
        timeout=150,
        keys=[(r"Boot in \d+ s", b"\r")],
    )
    assert booted.outcome == "success", booted.tail()
    assert "Secure boot enabled" in booted.serial
    report = BootReport.parse(booted.serial, booted.duration)
    assert report.schematic == sid
    assert report.cmdline is not None and "lockdown=confidentiality" in report.cmdline
