"""Disk images from the factory, booted in qemu (TCG): BIOS through GRUB, UEFI through systemd-boot."""

from __future__ import annotations

import json
import lzma
import subprocess
import tarfile
from pathlib import Path

import pytest

from services.mesh.supervisor import Mesh
from tests.e2e.test_boot_initramfs import create_schematic, download
from tests.e2e.test_boot_iso import SERIAL_SCHEMATIC
from tests.support import qemu

pytestmark = [pytest.mark.e2e, pytest.mark.registry, pytest.mark.boot]


@pytest.fixture(scope="module")
def metal_raw(demo_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    sid = create_schematic(demo_mesh, SERIAL_SCHEMATIC)
    work = tmp_path_factory.mktemp("disk")
    packed = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64.raw.xz", work / "metal-amd64.raw.xz")
    raw = work / "metal-amd64.raw"
    with lzma.open(packed) as source, raw.open("wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    return sid, raw


def test_dual_boot_layout(metal_raw: tuple[str, Path]) -> None:
    _, raw = metal_raw
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, check=True).stdout)
    names = [p["name"] for p in table["partitiontable"]["partitions"]]
    assert names == ["EFI", "BIOS", "BOOT", "META"]  # dual-boot from 1.10 on amd64 (spec §15)


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_metal_raw_boots(metal_raw: tuple[str, Path], firmware: str, tmp_path: Path) -> None:
    sid, raw = metal_raw
    argv = qemu.disk_argv(raw)
    if firmware == "uefi":
        argv = [*qemu.ovmf_argv(tmp_path), *argv]
    result = qemu.boot_demo_disk(argv, tmp_path / f"{firmware}.log")
    qemu.demo_report(result, sid, "demo.marker=booted-by-factory")


def test_platform_default_images_pass_structural_checks(demo_mesh: Mesh, tmp_path: Path) -> None:
    """Default disk paths of a few cloud platforms (spec §3.1), checked with the tools that consume them."""
    sid = create_schematic(demo_mesh, b"customization: {}\n")
    base = f"{demo_mesh.url}/image/{sid}/v1.12.1"

    qcow2 = download(f"{base}/oracle-amd64.qcow2", tmp_path / "oracle.qcow2")
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-f", "qcow2", "--output=json", str(qcow2)], capture_output=True, check=True
        ).stdout
    )
    assert info["format"] == "qcow2" and info["cluster-size"] == 8192
    assert subprocess.run(["qemu-img", "check", "-f", "qcow2", str(qcow2)], capture_output=True).returncode == 0

    ova = download(f"{base}/vmware-amd64.ova", tmp_path / "vmware.ova")
    with tarfile.open(ova) as archive:
        names = archive.getnames()
        assert names[0].endswith(".ovf") and any(n.endswith(".mf") for n in names)
        assert any(n.endswith(".vmdk") for n in names)

    gcp = download(f"{base}/gcp-amd64.raw.tar.gz", tmp_path / "gcp.raw.tar.gz")
    with tarfile.open(gcp, "r:gz") as archive:
        assert archive.getnames() == ["disk.raw"]
