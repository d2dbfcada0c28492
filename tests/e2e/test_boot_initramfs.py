"""Kernel + initramfs with extensions from the factory, booted in qemu (TCG): the booted demo system
reports the schematic's kernel args, its extensions and its schematic ID (issue 6)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from devtools.demo_release.boot import boot, netboot_argv, run_qemu
from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry, pytest.mark.boot]

SCHEMATIC = b"""customization:
  extraKernelArgs:
    - demo.marker=booted-by-factory
  systemExtensions:
    officialExtensions:
      - siderolabs/demo-firmware
      - siderolabs/demo-kmod
      - siderolabs/demo-tools
"""


def create_schematic(mesh: Mesh, body: bytes) -> str:
    request = urllib.request.Request(f"{mesh.url}/schematics", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return str(json.loads(reply.read())["id"])


def download(url: str, dest: Path) -> Path:
    status, _, body = http_get(url)
    assert status == 200, body[:200]
    dest.write_bytes(body)
    return dest


async def test_initramfs_with_extensions_boots(demo_mesh: Mesh, tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64")
    sid = create_schematic(demo_mesh, SCHEMATIC)
    base = f"{demo_mesh.url}/image/{sid}/v1.12.1"
    kernel = download(f"{base}/kernel-amd64", tmp_path / "vmlinuz")
    initramfs = download(f"{base}/initramfs-amd64.xz", tmp_path / "initramfs.xz")
    cmdline = http_get(f"{base}/cmdline-metal-amd64")[2].decode()
    # Talos ≥ 1.8 has no serial console on metal; the last console= becomes /dev/console, so one is added.
    report = await boot(kernel, initramfs, append=f"{cmdline} console=ttyS0", timeout=120)
    assert report.done, report.console[-3000:]
    assert report.cmdline is not None and "demo.marker=booted-by-factory" in report.cmdline
    assert "talos.platform=metal" in report.cmdline
    assert {"demo-firmware", "demo-kmod", "demo-tools", "schematic", "modules.dep"} <= set(report.extensions)
    assert report.schematic == sid
    assert any("demo" in path for path in report.firmware), report.firmware
    assert any("dummy" in path for path in report.insmod), report.insmod
    assert not report.errors, report.errors


async def test_ipxe_netboot_from_the_pxe_route(demo_mesh: Mesh) -> None:
    """A BIOS iPXE guest boots from our `/pxe/…` script, fetching kernel and initramfs from the gateway."""
    require_tools("qemu-system-x86_64")
    body = SCHEMATIC.replace(b"demo.marker=booted-by-factory", b"demo.marker=netbooted").replace(
        b"  extraKernelArgs:\n", b"  extraKernelArgs:\n    - console=ttyS0\n"
    )
    sid = create_schematic(demo_mesh, body)
    port = demo_mesh.config.http.listen.rpartition(":")[2]
    report = await run_qemu(netboot_argv(f"http://10.0.2.2:{port}/pxe/{sid}/v1.12.1/metal-x86_64"), timeout=180)
    assert report.done, report.console[-3000:]
    assert report.cmdline is not None and "demo.marker=netbooted" in report.cmdline
    assert report.schematic == sid
    assert {"demo-firmware", "demo-kmod", "demo-tools", "schematic"} <= set(report.extensions)
