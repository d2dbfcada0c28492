"""The catalog through the running mesh, against the demo release in a real registry (issue 5)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from devtools.demo_release import DemoRelease
from devtools.demo_release.cache import CacheDir
from devtools.demo_release.publisher import Publisher
from devtools.demo_release.signing import load_cosign_key
from imagefactory.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2
from services.mesh.supervisor import Mesh
from services.shared.grpc_client import open_channel
from services.shared.oci import RegistryClient, digest_of
from services.signer.keys import CosignKey
from tests.e2e.conftest import demo_artifacts, http_get
from tests.support.cosign_cli import cosign_verify
from tests.support.demo import demo_key_pub, publish_demo
from tests.support.mesh import make_mesh
from tests.support.registry import RegistryServer, start_registry

pytestmark = [pytest.mark.e2e, pytest.mark.registry]


def get_json(url: str) -> tuple[int, Any]:
    status, _, body = http_get(url)
    return status, json.loads(body) if status == 200 else body


def test_versions_and_broken_versions(demo_mesh: Mesh) -> None:
    status, headers, body = http_get(f"{demo_mesh.url}/versions")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; charset=utf-8"  # what Go's sniffing yields (spec §1.5)
    assert json.loads(body) == ["v1.9.6", "v1.12.1", "v1.13.0-beta.1"]
    assert get_json(f"{demo_mesh.url}/versions?broken=true") == (200, ["v1.11.5"])


def test_official_extensions(demo_mesh: Mesh, demo_release: DemoRelease) -> None:
    status, extensions = get_json(f"{demo_mesh.url}/version/v1.12.1/extensions/official")
    assert status == 200
    names = [e["name"] for e in extensions]
    assert {"siderolabs/demo-firmware", "siderolabs/demo-kmod", "siderolabs/demo-tools"} <= set(names)
    first = extensions[0]
    assert set(first) == {"name", "ref", "digest", "author", "description"}
    assert first["ref"].startswith(f"{demo_release.registry}/siderolabs/")
    assert first["digest"].startswith("sha256:")
    assert get_json(f"{demo_mesh.url}/version/1.12.1/extensions/official")[1] == extensions  # `v` optional


@pytest.mark.parametrize(
    ("version", "status", "body"),
    [
        ("v1.5.0-alpha.0", 404, b"version 1.5.0-alpha.0 is not available\n"),
        ("v1.11.5", 404, b"version 1.11.5 is not available\n"),  # broken
        ("v1.7", 400, None),  # strict semver; the reference answers 500
        ("latest", 400, None),
    ],
)
def test_version_errors(demo_mesh: Mesh, version: str, status: int, body: bytes | None) -> None:
    got, _, raw = http_get(f"{demo_mesh.url}/version/{version}/extensions/official")
    assert got == status, raw
    if body is not None:
        assert raw == body


def test_overlays(demo_mesh: Mesh) -> None:
    status, overlays = get_json(f"{demo_mesh.url}/version/v1.12.1/overlays/official")
    assert status == 200
    assert [(o["name"], o["image"]) for o in overlays] == [
        ("demo_board", "siderolabs/sbc-demo"),
        ("rpi_generic", "siderolabs/sbc-raspberrypi"),  # the web UI's default board
    ]


def test_talosctl(demo_mesh: Mesh, demo_release: DemoRelease) -> None:
    status, urls = get_json(f"{demo_mesh.url}/talosctl/v1.12.1")
    assert status == 200
    base = demo_mesh.config.http.external_url.rstrip("/")
    assert urls == sorted(urls)
    assert f"{base}/talosctl/v1.12.1/talosctl-linux-amd64" in urls
    assert get_json(f"{demo_mesh.url}/talosctl/v1.9.6") == (200, [])  # before factory downloads (spec §2.7)
    status, headers, binary = http_get(f"{demo_mesh.url}/talosctl/v1.12.1/talosctl-linux-amd64")
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="talosctl-linux-amd64"'
    assert int(headers["Content-Length"]) == len(binary) > 0
    status, headers, _ = http_get(f"{demo_mesh.url}/talosctl/v1.12.1/talosctl-windows-amd64.exe")
    assert status == 200
    assert http_get(f"{demo_mesh.url}/talosctl/v1.12.1/manifest.yaml")[0] == 404  # only listed names
    assert http_get(f"{demo_mesh.url}/talosctl/v1.12.1/..%2f..%2fetc%2fpasswd")[0] == 404
    assert http_get(f"{demo_mesh.url}/talosctl/v1.10.0")[2] == b"version 1.10.0 is not available\n"


async def test_resolve_pins_verified_digests(demo_mesh: Mesh, demo_release: DemoRelease) -> None:
    channel = open_channel(demo_mesh.config, "catalog")
    stub: Any = catalog_pb2_grpc.CatalogServiceStub(channel)
    try:
        reply = await stub.Resolve(
            catalog_pb2.ResolveRequest(
                version="v1.12.1",
                arch=common_pb2.ARCH_AMD64,
                extensions=["siderolabs/demo-firmware", "siderolabs/demo-tools"],
                overlay_name="demo_board",
            )
        )
        assert reply.imager.digest == demo_release.image("imager", "v1.12.1").digest
        assert reply.installer_base.repository == "siderolabs/installer-base"
        assert [e.name for e in reply.extensions] == ["siderolabs/demo-firmware", "siderolabs/demo-tools"]
        assert all(e.image.digest.startswith("sha256:") for e in reply.extensions)
        assert reply.overlay.repository == "siderolabs/sbc-demo"
        old = await stub.Resolve(catalog_pb2.ResolveRequest(version="v1.9.6", arch=common_pb2.ARCH_AMD64))
        assert old.installer_base.repository == "siderolabs/installer"  # before the unified installer
        with pytest.raises(aio.AioRpcError) as info:
            await stub.Resolve(
                catalog_pb2.ResolveRequest(version="v1.12.1", arch=common_pb2.ARCH_AMD64, extensions=["nope/x"])
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == 'official extension "nope/x" is not available for Talos version v1.12.1'
    finally:
        await channel.close(None)


def test_tampered_upstream_signature_is_refused(tmp_path: Path, demo_key: CosignKey, demo_cache: CacheDir) -> None:
    """A registry whose extension catalog is signed by an unknown key: the catalog refuses to use it."""
    server: RegistryServer = start_registry(tmp_path / "registry")
    try:
        release, _ = asyncio.run(publish_demo(server.host, demo_key, demo_cache))
        intruder = load_cosign_key(tmp_path / "intruder.pem", generate=True)
        asyncio.run(
            resign(server.host, "siderolabs/extensions", release.image("extensions", "v1.12.1").digest, intruder)
        )
        mesh = make_mesh(tmp_path / "mesh", artifacts=demo_artifacts(release, demo_key))
        mesh.start(timeout=60)
        try:
            status, _, body = http_get(f"{mesh.url}/version/v1.12.1/extensions/official")
            assert status == 502
            assert body.startswith(b"failed to verify image signature for ")
            assert http_get(f"{mesh.url}/version/v1.9.6/extensions/official")[0] == 200  # others unaffected
        finally:
            mesh.stop()
    finally:
        server.stop()


async def resign(host: str, repo: str, digest: str, key: CosignKey) -> None:
    """Replace an image's signature with one made by `key` (the publisher's own signing step)."""
    async with RegistryClient(host, insecure=True) as client:
        await Publisher(client, key, epoch=0).sign(repo, digest)


def test_source_image_proxy(demo_mesh: Mesh, demo_release: DemoRelease, demo_key: CosignKey, tmp_path: Path) -> None:
    """`/v2/siderolabs/<image>/…` forwards to the backing registry; real clients see upstream as is."""
    status, _, body = http_get(f"{demo_mesh.url}/v2/siderolabs/imager/tags/list")
    assert status == 200
    assert "v1.12.1" in json.loads(body)["tags"]
    imager = demo_release.image("imager", "v1.12.1")
    status, headers, _ = http_get(
        f"{demo_mesh.url}/v2/siderolabs/imager/manifests/v1.12.1",
        {"Accept": "application/vnd.oci.image.index.v1+json", "Authorization": "Bearer leak-me-not"},
    )
    assert (status, headers["Docker-Content-Digest"]) == (200, imager.digest)
    assert http_get(f"{demo_mesh.url}/v2/siderolabs/nonexistent/manifests/v1")[2] == b"unknown image: nonexistent\n"
    assert http_get(f"{demo_mesh.url}/v2/a/b/c/manifests/v1")[0] == 404
    assert http_get(f"{demo_mesh.url}/v2/siderolabs/installer/tags/v1")[0] == 404
    assert http_get(f"{demo_mesh.url}/v2/")[0] == 200

    # Independent clients: skopeo reads through the proxy; cosign verifies the upstream signature.
    factory = demo_mesh.url.removeprefix("http://")
    inspected = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{factory}/siderolabs/imager:v1.12.1"],
        capture_output=True,
        timeout=60,
    )
    assert inspected.returncode == 0, inspected.stderr
    assert digest_of(inspected.stdout) == imager.digest
    verified = cosign_verify(f"{factory}/siderolabs/imager:v1.12.1", demo_key_pub(demo_key), tmp_path)
    assert verified.returncode == 0, verified.stderr
