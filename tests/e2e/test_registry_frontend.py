"""`docker pull <factory>/<image>/<schematic>:<version>`: built on demand, indexed, signed (issue 8)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tarfile
import time
from pathlib import Path

import aiohttp
import pytest

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.e2e.test_boot_initramfs import create_schematic
from tests.e2e.test_images import metric
from tests.support.cosign_cli import cosign_verify
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry]


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["skopeo", *args], capture_output=True, timeout=600)


def test_installer_pull_index_layers_and_signature(demo_mesh: Mesh, tmp_path: Path) -> None:
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [pulled.installer=1]\n")
    factory = demo_mesh.url.removeprefix("http://")
    image = f"{factory}/metal-installer/{sid}:v1.12.1"

    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{image}")
    assert raw.returncode == 0, raw.stderr
    index = json.loads(raw.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]) == [
        ("linux", "amd64"),
        ("linux", "arm64"),
    ]
    copied = skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{image}", f"oci:{tmp_path / 'oci'}:pulled")
    assert copied.returncode == 0, copied.stderr
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    (top,) = json.loads((tmp_path / "oci" / "index.json").read_text())["manifests"]
    for child in json.loads((blobs / top["digest"].removeprefix("sha256:")).read_text())["manifests"]:
        manifest = json.loads((blobs / child["digest"].removeprefix("sha256:")).read_text())
        assert all((blobs / layer["digest"].removeprefix("sha256:")).is_file() for layer in manifest["layers"])

    key = tmp_path / "factory.pub"
    key.write_bytes(http_get(f"{demo_mesh.url}/oci/cosign/signing-key.pub")[2])
    verified = cosign_verify(image, key, tmp_path)
    assert verified.returncode == 0, verified.stderr

    start = time.monotonic()
    again = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{image}")
    assert again.returncode == 0 and again.stdout == raw.stdout
    assert time.monotonic() - start < 5  # served from the store (skopeo's own start-up dominates)


def test_registry_errors(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization: {}\n")
    assert http_get(f"{demo_mesh.url}/v2/talos/{sid}/manifests/v1.12.1")[2] == b"invalid image: talos\n"
    status, _, body = http_get(f"{demo_mesh.url}/v2/installer/{'a' * 64}/manifests/v1.12.1")
    assert (status, body) == (404, f'schematic ID "{"a" * 64}" not found\n'.encode())
    assert http_get(f"{demo_mesh.url}/v2/installer/{sid}/blobs/sha256:{'0' * 64}")[0] == 404
    status, _, body = http_get(f"{demo_mesh.url}/v2/installer/{sid}/referrers/sha256:{'0' * 64}")
    assert status == 200 and json.loads(body)["manifests"] == []


def test_latest_resolves_to_the_newest_stable_version(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [latest.check=1]\n")
    factory = demo_mesh.url.removeprefix("http://")
    latest = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{factory}/installer/{sid}:latest")
    pinned = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{factory}/installer/{sid}:v1.12.1")
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout == pinned.stdout  # v1.13.0-beta.1 is a pre-release, v1.11.5 is configured broken


def test_a_tag_whose_signature_is_gone_is_rebuilt_not_served(demo_mesh: Mesh) -> None:
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [resign.check=1]\n")
    factory = demo_mesh.url.removeprefix("http://")
    image = f"docker://{factory}/metal-installer/{sid}:v1.12.1"
    first = skopeo("inspect", "--raw", "--tls-verify=false", image)
    assert first.returncode == 0, first.stderr
    # Drop every signature manifest from the store: the tag no longer verifies.
    dropped = 0
    for meta in (demo_mesh.config.state_dir / "cache").rglob("meta.json"):
        if b'"file_name":"signature"' in meta.read_bytes():
            meta.unlink()
            dropped += 1
    assert dropped
    again = skopeo("inspect", "--raw", "--tls-verify=false", image)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # rebuilt (deterministically) and signed again
    key_signed = list((demo_mesh.config.state_dir / "cache").rglob("meta.json"))
    assert any(b'"file_name":"signature"' in m.read_bytes() for m in key_signed)


async def test_concurrent_pulls_of_a_cold_image_build_it_once(demo_mesh: Mesh) -> None:
    """Five clients pull the same unbuilt installer at once: one build per arch, the same index for all."""
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [five.pullers=1]\n")
    before = metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="installer"}')
    url = f"{demo_mesh.url}/v2/metal-installer/{sid}/manifests/v1.12.1"
    async with aiohttp.ClientSession() as session:

        async def pull() -> tuple[int, str]:
            async with session.get(url, headers={"Accept": "application/vnd.oci.image.index.v1+json"}) as reply:
                await reply.read()
                return reply.status, reply.headers["Docker-Content-Digest"]

        results = await asyncio.gather(*(pull() for _ in range(5)))
    assert {status for status, _ in results} == {200}
    assert len({digest for _, digest in results}) == 1
    after = metric(demo_mesh, "builder", "image_factory_assets_built_total", '{output_kind="installer"}')
    assert after - before == 2  # amd64 and arm64, once each


def test_secureboot_installer_pull_carries_signed_boot_files_for_both_arches(demo_mesh: Mesh, tmp_path: Path) -> None:
    """`installer-secureboot`: every arch's artifacts layer holds the UKI and systemd-boot, both signed
    with the factory's Secure Boot key (sbverify against /secureboot/signing-cert.pem)."""
    require_tools("sbverify")
    sid = create_schematic(demo_mesh, b"customization:\n  extraKernelArgs: [sb.installer=1]\n")
    factory = demo_mesh.url.removeprefix("http://")
    image = f"docker://{factory}/installer-secureboot/{sid}:v1.12.1"
    layout = tmp_path / "oci"
    copied = skopeo("copy", "--all", "--src-tls-verify=false", image, f"oci:{layout}:sb")
    assert copied.returncode == 0, copied.stderr
    cert = tmp_path / "db.pem"
    cert.write_bytes(http_get(f"{demo_mesh.url}/secureboot/signing-cert.pem")[2])

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")

    index = json.loads((layout / "index.json").read_text())
    (top,) = index["manifests"]
    children = json.loads(blob(top["digest"]).read_text())["manifests"]
    assert sorted(c["platform"]["architecture"] for c in children) == ["amd64", "arm64"]
    for child in children:
        arch = child["platform"]["architecture"]
        manifest = json.loads(blob(child["digest"]).read_text())
        with tarfile.open(blob(manifest["layers"][-1]["digest"])) as layer:
            names = sorted(m.name for m in layer.getmembers() if m.isfile())
            assert names == [f"usr/install/{arch}/systemd-boot.efi", f"usr/install/{arch}/vmlinuz.efi"]
            layer.extractall(tmp_path / arch, filter="data")
        for name in names:
            checked = subprocess.run(
                ["sbverify", "--cert", str(cert), str(tmp_path / arch / name)], capture_output=True, timeout=60
            )
            assert checked.returncode == 0, (arch, name, checked.stderr)
