"""More disk images from the factory booted in qemu (TCG): Azure's VHD, and the Secure Boot disk image under
enforced Secure Boot, accepted with the factory's certificate enrolled and refused with another one (issue 7)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.e2e.test_boot_initramfs import SCHEMATIC, create_schematic, download
from tests.e2e.test_sbc_overlay import unxz_sparse
from tests.e2e.test_secureboot import SB_SCHEMATIC
from tests.support import qemu
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry, pytest.mark.boot]


def test_azure_vhd_boots(demo_mesh: Mesh, tmp_path: Path) -> None:
    """`azure-amd64.vhd.xz` (fixed VHD, imager §7.8) read by qemu's own `vpc` driver, booted under OVMF."""
    require_tools(qemu.QEMU, "qemu-img")
    sid = create_schematic(demo_mesh, SCHEMATIC)
    packed = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/azure-amd64.vhd.xz", tmp_path / "azure.vhd.xz")
    vhd = unxz_sparse(packed, tmp_path / "azure-amd64.vhd")
    with vhd.open("rb") as f:
        f.seek(-512, 2)
        assert f.read(8) == b"conectix"  # the VHD footer (a fixed VHD is raw + this one sector)
    result = qemu.boot_demo_disk([*qemu.ovmf_argv(tmp_path), *qemu.disk_argv(vhd, fmt="vpc")], tmp_path / "azure.log")
    qemu.demo_report(result, sid, "talos.platform=azure", "demo.marker=booted-by-factory")


@pytest.fixture(scope="module")
def secureboot_raw(demo_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    sid = create_schematic(demo_mesh, SB_SCHEMATIC)
    work = tmp_path_factory.mktemp("sb-disk")
    url = f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64-secureboot.raw.xz"
    raw = unxz_sparse(download(url, work / "sb.raw.xz"), work / "metal-amd64-secureboot.raw")
    cert = work / "factory-cert.pem"
    cert.write_bytes(http_get(f"{demo_mesh.url}/secureboot/signing-cert.pem")[2])
    return sid, raw, cert


def other_certificate(dest: Path) -> Path:
    """A self-signed certificate the factory never signed with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the Image Factory")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    dest.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return dest


@pytest.mark.parametrize("enrolled", ["factory", "other"])
def test_secure_boot_disk_image_under_enforced_secure_boot(
    secureboot_raw: tuple[str, Path, Path], tmp_path: Path, enrolled: str
) -> None:
    """PK/KEK/db = the served signing certificate: sd-boot and the UKI verify, the system boots. PK/KEK/db =
    another certificate: the firmware refuses the factory-signed systemd-boot."""
    require_tools(qemu.QEMU)
    sid, raw, factory_cert = secureboot_raw
    cert = factory_cert if enrolled == "factory" else other_certificate(tmp_path / "other.pem")
    variables = qemu.enrolled_vars(tmp_path / "OVMF_VARS.fd", cert)
    result = qemu.boot_demo_disk([*qemu.secboot_argv(variables), *qemu.disk_argv(raw)], tmp_path / f"{enrolled}.log")
    if enrolled == "other":
        assert result.outcome == "refused", result.tail()
        assert "DEMO-" not in result.serial
        return
    qemu.demo_report(result, sid, "lockdown=confidentiality")
    assert "Secure boot enabled" in result.serial


@pytest.mark.parametrize(("platform", "firmware"), [("nocloud", "uefi"), ("aws", "bios")])
def test_cloud_raw_images_boot(demo_mesh: Mesh, tmp_path: Path, platform: str, firmware: str) -> None:
    """The default raw disk images of nocloud (small) and AWS (8 GiB, xz) boot and report the schematic."""
    require_tools(qemu.QEMU)
    sid = create_schematic(demo_mesh, SCHEMATIC)
    url = f"{demo_mesh.url}/image/{sid}/v1.12.1/{platform}-amd64.raw.xz"
    raw = unxz_sparse(download(url, tmp_path / f"{platform}.raw.xz"), tmp_path / f"{platform}-amd64.raw")
    argv = qemu.disk_argv(raw)
    if firmware == "uefi":
        argv = [*qemu.ovmf_argv(tmp_path), *argv]
    result = qemu.boot_demo_disk(argv, tmp_path / f"{platform}.log")
    qemu.demo_report(result, sid, f"talos.platform={platform}", "demo.marker=booted-by-factory")
