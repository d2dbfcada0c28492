"""Installer images pushed to a real registry (`installer.internal`), reached through the gateway by proxy
or by 307 redirect to the registry's external name (spec §9.1, §9.5; issue 8 item 4).

The registry is the session's Debian `docker-registry`; the demo release lives in it too. One mesh runs
in proxy mode and builds; a second mesh on the same state (same keys, same asset cache) runs in redirect
mode and must find the published, signed tag without building again.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_release import DemoRelease
from services.mesh.supervisor import Mesh
from services.shared.oci import RegistryClient, digest_of, signature_tag
from services.shared.oci import media_types as mt
from services.shared.oci.cosign import signature_manifest
from services.signer.keys import CosignKey
from tests.e2e.conftest import demo_artifacts, http_get
from tests.e2e.test_boot_initramfs import create_schematic
from tests.e2e.test_images import metric
from tests.support.cosign_cli import cosign_verify
from tests.support.mesh import make_mesh
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.registry]
NAMESPACE = "factory-installers"
IMAGE = "metal-installer"


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["skopeo", *args], capture_output=True, timeout=600)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def get_without_redirect(url: str) -> tuple[int, dict[str, str]]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=600) as reply:
            return reply.status, dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def installer_mesh(state: Path, release: DemoRelease, key: CosignKey, registry: RegistryServer, external: str) -> Mesh:
    internal = {"registry": registry.host, "repository": NAMESPACE, "insecure": True}
    return make_mesh(
        state,
        artifacts=demo_artifacts(release, key),
        installer={"internal": internal, "external": external},
    )


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("installer-registry-mesh")


@pytest.fixture(scope="module")
def proxy_mesh(state: Path, demo_release: DemoRelease, demo_key: CosignKey, registry: RegistryServer) -> Iterator[Mesh]:
    mesh = installer_mesh(state, demo_release, demo_key, registry, external="")
    mesh.start(timeout=60)
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def schematic(proxy_mesh: Mesh) -> str:
    return create_schematic(proxy_mesh, b"customization:\n  extraKernelArgs: [pushed.installer=1]\n")


def test_proxy_mode_pushes_signs_then_tags_in_the_registry(
    proxy_mesh: Mesh, schematic: str, registry: RegistryServer, tmp_path: Path
) -> None:
    factory = proxy_mesh.url.removeprefix("http://")
    through_factory = f"{factory}/{IMAGE}/{schematic}:v1.12.1"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{through_factory}")
    assert raw.returncode == 0, raw.stderr
    index = json.loads(raw.stdout)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    copied = skopeo("copy", "--src-tls-verify=false", f"docker://{through_factory}", f"oci:{tmp_path / 'oci'}:x")
    assert copied.returncode == 0, copied.stderr

    # The registry itself holds the tag and the cosign signature tag of the index it names.
    in_registry = f"{registry.host}/{NAMESPACE}/{IMAGE}/{schematic}:v1.12.1"
    direct = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{in_registry}")
    assert direct.returncode == 0 and direct.stdout == raw.stdout
    key = tmp_path / "factory.pub"
    key.write_bytes(http_get(f"{proxy_mesh.url}/oci/cosign/signing-key.pub")[2])
    for image in (in_registry, through_factory):  # the real cosign CLI, straight and through the proxy
        verified = cosign_verify(image, key, tmp_path)
        assert verified.returncode == 0, verified.stderr

    # Manifests and blobs by digest are proxied unchanged, with the registry's headers.
    child = index["manifests"][0]["digest"]
    accept = {"Accept": mt.OCI_MANIFEST}
    status, headers, body = http_get(f"{proxy_mesh.url}/v2/{IMAGE}/{schematic}/manifests/{child}", accept)
    assert (status, headers["Docker-Content-Digest"]) == (200, child)
    config = json.loads(body)["config"]["digest"]
    status, headers, body = http_get(f"{proxy_mesh.url}/v2/{IMAGE}/{schematic}/blobs/{config}")
    assert (status, headers["Docker-Content-Digest"], digest_of(body)) == (200, config, config)


def test_a_tag_whose_signature_does_not_verify_is_rebuilt(
    proxy_mesh: Mesh, schematic: str, registry: RegistryServer, tmp_path: Path
) -> None:
    repo = f"{NAMESPACE}/{IMAGE}/{schematic}"
    before = metric(proxy_mesh, "builder", "image_factory_assets_built_total", '{output_kind="installer"}')
    forged = asyncio.run(forge_signature(registry, repo))
    url = f"{proxy_mesh.url}/v2/{IMAGE}/{schematic}/manifests/v1.12.1"
    status, headers, _ = http_get(url, {"Accept": mt.OCI_INDEX})
    assert status == 200
    # Signed again by the factory: the signature tag no longer holds the forged manifest.
    assert asyncio.run(signature_of(registry, repo, headers["Docker-Content-Digest"])) != forged
    key = tmp_path / "factory.pub"
    key.write_bytes(http_get(f"{proxy_mesh.url}/oci/cosign/signing-key.pub")[2])
    verified = cosign_verify(f"{registry.host}/{repo}:v1.12.1", key, tmp_path)
    assert verified.returncode == 0, verified.stderr
    # The installer archives themselves were cached: republishing did not rebuild them.
    assert metric(proxy_mesh, "builder", "image_factory_assets_built_total", '{output_kind="installer"}') == before


async def forge_signature(registry: RegistryServer, repo: str) -> str:
    """Replace the signature of the tagged index with one that cannot verify; returns its digest."""
    async with RegistryClient(registry.host, insecure=True) as client:
        index = await client.get_manifest(repo, "v1.12.1")
        payload = b'{"critical":{"image":{"docker-manifest-digest":"' + index.digest.encode() + b'"}}}'
        config = b"{}"
        await client.push_blob(repo, payload)
        await client.push_blob(repo, config)
        manifest = signature_manifest(config, payload, "bm90IGEgc2lnbmF0dXJl")
        return await client.put_manifest(repo, signature_tag(index.digest), manifest, mt.OCI_MANIFEST)


async def signature_of(registry: RegistryServer, repo: str, digest: str) -> str:
    async with RegistryClient(registry.host, insecure=True) as client:
        return (await client.get_manifest(repo, signature_tag(digest))).digest


def test_redirect_mode_sends_clients_to_the_registry(
    proxy_mesh: Mesh,
    schematic: str,
    state: Path,
    demo_release: DemoRelease,
    demo_key: CosignKey,
    registry: RegistryServer,
    tmp_path: Path,
) -> None:
    http_get(f"{proxy_mesh.url}/v2/{IMAGE}/{schematic}/manifests/v1.12.1")  # published (order-independent)
    proxy_mesh.stop()
    mesh = installer_mesh(state, demo_release, demo_key, registry, external=f"{registry.host}/{NAMESPACE}")
    mesh.start(timeout=60)
    try:
        status, headers = get_without_redirect(f"{mesh.url}/v2/{IMAGE}/{schematic}/manifests/v1.12.1")
        assert status == 307
        prefix = f"{registry.url}/v2/{NAMESPACE}/{IMAGE}/{schematic}/manifests/sha256:"
        assert headers["Location"].startswith(prefix)
        digest = "sha256:" + "0" * 64
        status, headers = get_without_redirect(f"{mesh.url}/v2/{IMAGE}/{schematic}/blobs/{digest}")
        assert (status, headers["Location"]) == (
            307,
            f"{registry.url}/v2/{NAMESPACE}/{IMAGE}/{schematic}/blobs/{digest}",
        )
        image = f"docker://{mesh.url.removeprefix('http://')}/{IMAGE}/{schematic}:v1.12.1"
        copied = skopeo("copy", "--src-tls-verify=false", image, f"oci:{tmp_path / 'oci'}:x")
        assert copied.returncode == 0, copied.stderr
        # Found published and signed: nothing was built by this mesh.
        assert metric(mesh, "builder", "image_factory_assets_built_total", '{output_kind="installer"}') == 0
    finally:
        mesh.stop()
