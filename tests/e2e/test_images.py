"""`/image/…` and `/pxe/…` through the mesh against the demo release (issue 6, the paths built so far)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from devtools.demo_release import DemoRelease
from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get

pytestmark = [pytest.mark.e2e, pytest.mark.registry]


def create_schematic(mesh: Mesh, body: bytes) -> str:
    request = urllib.request.Request(f"{mesh.url}/schematics", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return str(json.loads(reply.read())["id"])


LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric(mesh: Mesh, process: str, name: str, labels: str = "") -> float:
    """The sum of the series of `name` whose labels include `labels` (`{k="v",…}`, empty = all)."""
    wanted = set(LABEL.findall(labels))
    _, _, body = http_get(f"http://{mesh.config.metrics.address(process)}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        series, _, value = line.rpartition(" ")
        if series.partition("{")[0] == name and wanted <= set(LABEL.findall(series)):
            total += float(value)
    return total


def test_cmdline_asset_and_headers(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [demo.marker=1, -console]\n")
    status, headers, body = http_get(f"{demo_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64")
    assert status == 200, body
    line = body.decode()
    assert line.startswith("talos.platform=metal ")
    assert "demo.marker=1" in line and "console=" not in line
    assert headers["Content-Disposition"] == 'attachment; filename="cmdline-metal-amd64"'
    assert int(headers["Content-Length"]) == len(body)
    status, headers, _ = http_get(f"{demo_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64?filename=my%20line.txt")
    assert headers["Content-Disposition"] == 'attachment; filename="my line.txt"'
    evil = http_get(f"{demo_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64?filename=a%0d%0aSet-Cookie:%20x")
    assert evil[0] == 400


def test_kernel_is_the_imager_kernel_with_ranges(demo_mesh: Mesh, demo_release: DemoRelease, tmp_path: Path) -> None:
    sid = create_schematic(demo_mesh, b"customization: {}\n")
    url = f"{demo_mesh.url}/image/{sid}/v1.12.1/kernel-amd64"
    status, headers, kernel = http_get(url)
    assert status == 200
    assert kernel[0x202:0x206] == b"HdrS"  # a real bzImage from the demo release
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, part = http_get(url, {"Range": "bytes=100-199"})
    assert (status, part, headers["Content-Range"]) == (206, kernel[100:200], f"bytes 100-199/{len(kernel)}")
    status, _, tail = http_get(url, {"Range": "bytes=-10"})
    assert (status, tail) == (206, kernel[-10:])
    status, headers, _ = http_get(url, {"Range": f"bytes={len(kernel)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(kernel)}")
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert int(reply.headers["Content-Length"]) == len(kernel)
        assert reply.read() == b""


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("aaaaaaaaaaaa/v1.5.0/metal-amd64.iso", 404, b'schematic ID "aaaaaaaaaaaa" not found\n'),
        (
            "{sid}/v1.12.1/metal-amd64.ssd",
            400,
            b'error parsing profile from path: invalid profile path: "metal-amd64.ssd"\n',
        ),
        ("{sid}/v1.99.0/kernel-amd64", 404, b"version 1.99.0 is not available\n"),
        ("{sid}/v1.12.1/kernel-foo", 400, b'error parsing profile from path: invalid architecture: "foo"\n'),
        ("{sid}/v1.12.1/metal-amd64.raw.xz.sha256", 402, None),
        ("{sid}/1.12/kernel-amd64", 400, None),
    ],
)
def test_bad_requests(demo_mesh: Mesh, path: str, status: int, body: bytes | None) -> None:
    sid = create_schematic(demo_mesh, b"customization: {}\n")
    got, _, raw = http_get(f"{demo_mesh.url}/image/{path.format(sid=sid)}")
    assert got == status, raw
    if body is not None:
        assert raw == body


def test_pxe_scripts(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization: {}\n")
    http = demo_mesh.config.http
    base = (http.external_pxe_url or http.external_url).rstrip("/")  # PXE links use the PXE base URL
    status, headers, script = http_get(f"{demo_mesh.url}/pxe/{sid}/v1.12.1/metal-amd64")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    cmdline = http_get(f"{demo_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64")[2].decode()
    assert script.decode() == (
        f"#!ipxe\n\nimgfree\nkernel {base}/image/{sid}/v1.12.1/kernel-amd64 {cmdline}\n"
        f"initrd {base}/image/{sid}/v1.12.1/initramfs-amd64.xz\nboot\n"
    )
    assert http_get(f"{demo_mesh.url}/pxe/{sid}/1.12.1/metal-x86_64")[2] == script  # `v` and ${buildarch}


async def test_concurrent_cold_requests_build_once(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [concurrent.cold=1]\n")
    before = metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="cmdline"}')
    url = f"{demo_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64"
    async with aiohttp.ClientSession() as session:

        async def one() -> bytes:
            async with session.get(url) as reply:
                assert reply.status == 200
                return await reply.read()

        bodies = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(bodies)) == 1
    after = metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="cmdline"}')
    assert after - before == 1


def test_installer_tar_is_a_docker_archive(demo_mesh: Mesh, tmp_path: Path) -> None:
    """`installer-amd64.tar`: base layers + the UKI/sd-boot layer, loadable by a real client (skopeo)."""
    sid = create_schematic(
        demo_mesh, b"customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/demo-tools]\n"
    )
    status, headers, body = http_get(f"{demo_mesh.url}/image/{sid}/v1.12.1/installer-amd64.tar")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "application/x-tar"
    archive = tmp_path / "installer.tar"
    archive.write_bytes(body)
    copied = subprocess.run(
        ["skopeo", "copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'oci'}:latest"],
        capture_output=True,
        timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((tmp_path / "oci" / "blobs" / "sha256" / manifest_digest).read_bytes())
    assert len(manifest["layers"]) == 2
    with tarfile.open(archive) as outer:
        names = outer.getnames()
    assert "manifest.json" in names
    last = manifest["layers"][-1]["digest"].removeprefix("sha256:")
    with tarfile.open(tmp_path / "oci" / "blobs" / "sha256" / last) as layer:
        assert sorted(layer.getnames()) == ["usr/install/amd64/systemd-boot.efi", "usr/install/amd64/vmlinuz.efi"]
