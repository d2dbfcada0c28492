"""ISOs from the factory booted in qemu (TCG), BIOS and UEFI: the booted demo system reports the
schematic's kernel args, its extensions and its schematic ID (issue 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from devtools.demo_release.boot import BootReport
from services.builder.boot_media import SOURCE_DATE_EPOCH
from services.builder.steps import fat
from services.mesh.supervisor import Mesh
from tests.e2e.test_boot_initramfs import SCHEMATIC, create_schematic, download
from tests.e2e.test_images import metric
from tests.support import qemu

pytestmark = [pytest.mark.e2e, pytest.mark.registry, pytest.mark.boot]

SDBOOT_MENU = r"Boot in \d+ s"
# Talos ≥ 1.8 has no serial console on metal; an extra `console=` replaces the platform's (spec §11).
SERIAL_SCHEMATIC = SCHEMATIC.replace(b"  extraKernelArgs:\n", b"  extraKernelArgs:\n    - console=ttyS0\n")


def boot_iso(iso: Path, firmware: str, work: Path) -> BootReport:
    argv = qemu.cdrom_argv(iso)
    if firmware == "uefi":
        argv = [*qemu.ovmf_argv(work), *argv]
    log = work / f"{iso.stem}-{firmware}.serial.log"
    result = qemu.boot(
        argv, log=log, success=r"DEMO-DONE", refusal=qemu.UEFI_NO_BOOT, timeout=150, keys=[(SDBOOT_MENU, b"\r")]
    )
    assert result.outcome == "success", f"{result.outcome} after {result.duration:.1f}s\n{result.tail()}"
    return BootReport.parse(result.serial, result.duration)


@pytest.mark.parametrize(
    ("version", "firmware"),
    [
        ("v1.12.1", "bios"),  # hybrid ISO (dual-boot default from 1.12): GRUB for BIOS
        ("v1.12.1", "uefi"),  # hybrid ISO: systemd-boot → UKI with profiles
        ("v1.9.6", "uefi"),  # GRUB ISO before 1.10
    ],
)
def test_iso_boots(demo_mesh: Mesh, tmp_path: Path, version: str, firmware: str) -> None:
    sid = create_schematic(demo_mesh, SERIAL_SCHEMATIC)
    iso = download(f"{demo_mesh.url}/image/{sid}/{version}/metal-amd64.iso", tmp_path / "metal-amd64.iso")
    assert iso.read_bytes()[0x8001:0x8006] == b"CD001"
    report = boot_iso(iso, firmware, tmp_path)
    assert report.cmdline is not None and "demo.marker=booted-by-factory" in report.cmdline
    assert "talos.platform=metal" in report.cmdline
    assert report.schematic == sid
    assert {"demo-firmware", "demo-kmod", "demo-tools", "schematic"} <= set(report.extensions)


def test_iso_is_reproducible(demo_mesh: Mesh, tmp_path: Path) -> None:
    """Two builds of the same inputs give the same bytes (SOURCE_DATE_EPOCH, fixed IDs, sorted trees)."""
    first = create_schematic(demo_mesh, SERIAL_SCHEMATIC + b"")
    other = create_schematic(demo_mesh, SERIAL_SCHEMATIC.replace(b"booted-by-factory", b"rebuild-check"))
    again = create_schematic(demo_mesh, SERIAL_SCHEMATIC.replace(b"booted-by-factory", b"rebuild-check"))
    assert other == again
    a = download(f"{demo_mesh.url}/image/{other}/v1.12.1/metal-amd64.iso", tmp_path / "a.iso").read_bytes()
    # Drop the cached copy: the builder must produce the identical bytes a second time.
    for path in (demo_mesh.config.state_dir / "cache").rglob("meta.json"):
        if b"metal-amd64.iso" in path.read_bytes():
            path.unlink()
    b = download(f"{demo_mesh.url}/image/{other}/v1.12.1/metal-amd64.iso", tmp_path / "b.iso").read_bytes()
    assert a == b
    assert first != other


async def test_uki_boots_under_ovmf(demo_mesh: Mesh, tmp_path: Path) -> None:
    """The factory's UKI as `EFI/BOOT/BOOTX64.EFI` on an ESP: OVMF starts it directly (profiles ≥ 1.10)."""
    sid = create_schematic(demo_mesh, SERIAL_SCHEMATIC)
    uki = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64-uki.efi", tmp_path / "uki.efi")
    assert uki.read_bytes()[:2] == b"MZ"
    tree = tmp_path / "esp"
    (tree / "EFI" / "BOOT").mkdir(parents=True)
    (tree / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(uki.read_bytes())
    esp = tmp_path / "esp.img"
    spec = fat.FatSpec("ESP", fat.efiboot_size(uki.stat().st_size))
    await fat.make_fat_image(spec, esp, tree, ["EFI"], source_date_epoch=SOURCE_DATE_EPOCH)
    log = tmp_path / "uki.serial.log"
    argv = [*qemu.ovmf_argv(tmp_path), *qemu.disk_argv(esp)]
    result = qemu.boot(argv, log=log, success=r"DEMO-DONE", refusal=qemu.UEFI_NO_BOOT, timeout=150)
    assert result.outcome == "success", result.tail()
    report = BootReport.parse(result.serial, result.duration)
    assert report.cmdline is not None and "demo.marker=booted-by-factory" in report.cmdline
    assert report.schematic == sid


async def test_concurrent_first_requests_for_an_iso_build_once(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, SERIAL_SCHEMATIC.replace(b"booted-by-factory", b"twenty-at-once"))
    before = metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="iso"}')
    url = f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64.iso"
    async with aiohttp.ClientSession() as session:

        async def head() -> int:
            async with session.head(url) as reply:
                assert reply.status == 200
                return int(reply.headers["Content-Length"])

        sizes = await asyncio.gather(*(head() for _ in range(20)))
    assert len(set(sizes)) == 1
    assert metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="iso"}') - before == 1
