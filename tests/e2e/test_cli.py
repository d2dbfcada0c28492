"""The installed `imagefactory` command against the demo mesh (issue 11, "Python SDK and CLI").

Each test runs the console script as a subprocess, as a user would: schematics and versions, an ISO
download with a progress display that is killed half-way and resumed, and an air-gap bundle that is
exported with the cache's signatures, verified offline and served by `python -m http.server`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.registry]

CLI = Path(sys.executable).parent / "imagefactory"
VERSION = "v1.12.1"
SCHEMATIC = "customization:\n    extraKernelArgs:\n        - cli.marker=1\n"


def cli(mesh: Mesh, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGEFACTORY_URL": mesh.url}
    return subprocess.run([str(CLI), *argv], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def schematic_id(demo_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> str:
    assert CLI.is_file(), f"{CLI} is missing: run `pip install -e .`"
    source = tmp_path_factory.mktemp("cli") / "schematic.yaml"
    source.write_text(SCHEMATIC)
    created = cli(demo_mesh, "schematic", "create", str(source))
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def test_schematics_versions_and_errors(demo_mesh: Mesh, schematic_id: str) -> None:
    assert schematic_id == sha256(SCHEMATIC.encode())  # the canonical form hashes to the ID (spec §6.3)
    got = cli(demo_mesh, "schematic", "get", schematic_id)
    assert (got.returncode, got.stdout) == (0, SCHEMATIC)
    versions = cli(demo_mesh, "--url", demo_mesh.url, "versions").stdout.split()
    assert VERSION in versions and "v1.11.5" not in versions  # broken in the demo mesh's configuration
    assert cli(demo_mesh, "versions", "--broken").stdout.split() == ["v1.11.5"]
    extensions = cli(demo_mesh, "extensions", VERSION)
    assert extensions.returncode == 0 and extensions.stdout.strip(), extensions.stderr
    missing = cli(demo_mesh, "schematic", "get", "a" * 64)
    assert (missing.returncode, missing.stderr) == (1, "imagefactory: schematic not found (HTTP 404)\n")
    bad = cli(demo_mesh, "download", schematic_id, VERSION, "metal-amd64.ssd", "-o", os.devnull)
    assert bad.returncode == 1
    assert bad.stderr == (
        'imagefactory: error parsing profile from path: invalid profile path: "metal-amd64.ssd" (HTTP 400)\n'
    )
    assert cli(demo_mesh, "download", schematic_id).returncode == 2


def wait_for_growth(part: Path, proc: subprocess.Popen[str], at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the download ended early: {proc.communicate()}"
        size = part.stat().st_size if part.exists() else 0
        if size >= at_least:
            return size
        time.sleep(0.05)
    raise AssertionError(f"{part} did not grow to {at_least} bytes in {timeout}s")


def test_iso_download_is_killed_then_resumed(demo_mesh: Mesh, schematic_id: str, tmp_path: Path) -> None:
    dest = tmp_path / "metal-amd64.iso"
    part = tmp_path / "metal-amd64.iso.part"
    env = {**os.environ, "IMAGEFACTORY_URL": demo_mesh.url}
    argv = [str(CLI), "download", schematic_id, VERSION, "metal-amd64.iso", "-o", str(dest)]
    # Throttled so that it is surely still running when killed; the first request also builds the ISO.
    proc = subprocess.Popen([*argv, "--limit-rate", "4M"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_growth(part, proc, 2 << 20, timeout=600)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: what a crash or a pulled cable leaves
        proc.wait(timeout=30)
        _, first_progress = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not dest.exists()
    left = part.stat().st_size
    assert left >= 2 << 20
    assert "metal-amd64.iso [" in first_progress  # the bar was drawing while it ran

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "metal-amd64.iso: resuming at" in resumed.stderr
    assert " 100% " in resumed.stderr.splitlines()[-1]
    assert not part.exists()

    status, headers, plain = http_get(f"{demo_mesh.url}/image/{schematic_id}/{VERSION}/metal-amd64.iso")
    assert status == 200
    assert resumed.stdout == f"{sha256(plain)}  {dest}\n"
    assert sha256(dest.read_bytes()) == sha256(plain)
    assert headers["ETag"] == f'"sha256:{sha256(plain)}"'


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """`python -m http.server` over an (initially empty) directory: the air-gapped mirror."""
    root = tmp_path / "mirror"
    root.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while http_get_or_none(f"{url}/") is None:
            assert time.monotonic() < deadline and proc.poll() is None, "http.server did not start"
            time.sleep(0.1)
        yield root, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def http_get_or_none(url: str) -> int | None:
    try:
        return http_get(url)[0]
    except OSError:
        return None


def test_export_verify_and_serve_a_bundle(
    demo_mesh: Mesh, schematic_id: str, static_server: tuple[Path, str], tmp_path: Path
) -> None:
    bundle, mirror = static_server
    cache_dir = Path(demo_mesh.config.cache.root or demo_mesh.config.state_dir / "cache")
    assets = ["kernel-amd64", "cmdline-metal-amd64", "metal-amd64.iso"]
    export = cli(
        demo_mesh,
        "export",
        str(bundle),
        "-s",
        schematic_id,
        "-v",
        VERSION,
        *(arg for asset in assets for arg in ("-a", asset)),
        "--cache-dir",
        str(cache_dir),
    )
    assert export.returncode == 0, export.stderr
    assert export.stdout.endswith(f"{len(assets)} assets, {len(assets)} signed\n")

    # The key comes from the factory itself, not from the bundle: that is what pins the trust.
    key = tmp_path / "factory.pub"
    key.write_bytes(http_get(f"{demo_mesh.url}/oci/cosign/signing-key.pub")[2])
    verify = cli(demo_mesh, "verify", str(bundle), "--key", str(key), "--require-signatures")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.endswith(f"files verified, {len(assets)} signed by the factory key\n")

    # A plain static server answers the factory's URLs with the factory's bytes.
    for asset in assets:
        path = f"/image/{schematic_id}/{VERSION}/{asset}"
        served = http_get(f"{mirror}{path}")
        assert served[0] == 200
        assert sha256(served[2]) == sha256(http_get(f"{demo_mesh.url}{path}")[2]), asset
    assert http_get(f"{mirror}/schematics/{schematic_id}")[2] == SCHEMATIC.encode()
    # … and the CLI works against the mirror as against the factory.
    listed = cli(demo_mesh, "--url", mirror, "versions")
    assert listed.stdout == f"{VERSION}\n"
    copy = tmp_path / "k"
    again = cli(demo_mesh, "--url", mirror, "download", schematic_id, VERSION, "kernel-amd64", "-q", "-o", str(copy))
    assert again.returncode == 0, again.stderr
    assert copy.read_bytes() == (bundle / "image" / schematic_id / VERSION / "kernel-amd64").read_bytes()

    # Tampering is caught offline.
    (bundle / "image" / schematic_id / VERSION / "kernel-amd64").write_bytes(b"not a kernel")
    broken = cli(demo_mesh, "verify", str(bundle), "--key", str(key))
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"imagefactory: image/{schematic_id}/{VERSION}/kernel-amd64: size ")
