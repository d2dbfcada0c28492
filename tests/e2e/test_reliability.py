"""The mesh under failure (issue 11): a killed builder, a registry outage, a tampered cache, a full disk,
and clients that never finish sending their body.

One mesh for the module, against the demo release served by a registry of its own (the session
registry's storage, a port this module may stop and start again), with the builder's scratch dir on a
tmpfs whose size a test can change. Each test leaves the mesh healthy for the next.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from devtools import local_registry
from devtools.demo_release import DemoRelease
from imagefactory.v1 import cache_pb2, cache_pb2_grpc
from services.mesh.supervisor import Mesh
from services.shared.config import SERVICE_NAMES
from services.shared.grpc_client import open_channel
from services.signer.keys import CosignKey
from tests.e2e.conftest import demo_artifacts, http_get
from tests.support.mesh import make_mesh
from tests.support.ports import free_port
from tests.support.raw_http import raw_exchange
from tests.support.registry import RegistryServer, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.registry, pytest.mark.reliability]

SCRATCH_SIZE = "512m"  # plenty for the demo ISO build
BODY_TIMEOUT = 2.0  # http.body_timeout_seconds of this module's mesh
FAST = 5.0  # seconds: what "answers quickly" means here, on a loaded 2-CPU machine


# --- fixtures -------------------------------------------------------------------------------------


@dataclass
class Upstream:
    """A registry on a fixed port that a test may stop and start again."""

    workdir: Path
    port: int
    server: RegistryServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = local_registry.start_registry(self.workdir, port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> Iterator[Upstream]:
    require_tool("docker-registry")
    workdir = tmp_path_factory.mktemp("upstream")
    # The session registry's storage, already holding the demo release, served by a process of our own.
    (workdir / "storage").symlink_to(registry.root, target_is_directory=True)
    server = Upstream(workdir, free_port())
    server.start()
    yield server
    server.stop()


def mount_tmpfs(path: Path, size: str, *, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size},mode=0755"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", os.fspath(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        message = f"cannot mount a tmpfs on {path}: {result.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI runs as root and must be able to)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The builder's scratch dir (`<state_dir>/builder/work`) as its own small filesystem."""
    root = tmp_path_factory.mktemp("reliability")
    work = root / "state" / "builder" / "work"
    work.mkdir(parents=True)
    mount_tmpfs(work, SCRATCH_SIZE)
    yield root
    subprocess.run(["umount", "--lazy", os.fspath(work)], check=False)


@pytest.fixture(scope="module")
def rmesh(scratch: Path, upstream: Upstream, demo_release: DemoRelease, demo_key: CosignKey) -> Iterator[Mesh]:
    mesh = make_mesh(
        scratch,
        # Every request asks the registry again: the outage test must not be hidden by the catalog's memory.
        artifacts=demo_artifacts(
            demo_release, demo_key, registry=upstream.host, version_recheck_seconds=0, tag_recheck_seconds=0
        ),
        http={"body_timeout_seconds": BODY_TIMEOUT},
    )
    mesh.start(timeout=60)
    yield mesh
    mesh.stop()


@pytest.fixture(autouse=True)
def restarts_what_a_test_left_dead(rmesh: Mesh) -> Iterator[None]:
    """A failed test must not take the next ones down with it: bring back any process it left dead."""
    yield
    for name, _ in rmesh.exited():
        rmesh.start_process(name)
        if name in SERVICE_NAMES:
            rmesh.wait_serving(name, time.monotonic() + 60)
        else:
            rmesh.wait_ready(time.monotonic() + 60)


# --- helpers ----------------------------------------------------------------------------------------


def create_schematic(mesh: Mesh, marker: str) -> str:
    status, _, body = post(mesh, f"customization:\n  extraKernelArgs: [{marker}]\n".encode())
    assert status == 201, body
    return str(json.loads(body)["id"])


def post(mesh: Mesh, body: bytes) -> tuple[int, dict[str, str], bytes]:
    response = raw_exchange(
        mesh,
        b"POST /schematics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        timeout=30.0,
    )
    head, _, payload = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split(" ")[1]), dict(line.split(": ", 1) for line in lines[1:]), payload


def one_line(body: bytes) -> bool:
    return body.endswith(b"\n") and body.count(b"\n") == 1


def cache_root(mesh: Mesh) -> Path:
    return mesh.config.state_dir / "cache"


def published(mesh: Mesh) -> dict[str, Path]:
    """Every asset directory of the filesystem store, by key; each must be complete."""
    assets = {p.name: p for p in cache_root(mesh).glob("[0-9a-f][0-9a-f]/*")}
    for key, directory in assets.items():
        assert sorted(f.name for f in directory.iterdir()) == ["blob", "meta.json", "meta.sig"], key
    return assets


def incoming(mesh: Mesh) -> list[Path]:
    return list((cache_root(mesh) / ".incoming").iterdir())


async def cache_stat(mesh: Mesh, key: str) -> Any:
    channel = open_channel(mesh.config, "cache")
    try:
        stub: Any = cache_pb2_grpc.CacheServiceStub(channel)
        return await stub.Stat(cache_pb2.StatRequest(key=key))
    finally:
        await channel.close(None)


def metric(mesh: Mesh, process: str, name: str) -> float:
    _, _, body = http_get(f"http://{mesh.config.metrics.address(process)}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def pids(mesh: Mesh) -> dict[str, int]:
    return {name: proc.pid for name, proc in mesh.processes.items()}


def work_dir(mesh: Mesh) -> Path:
    return mesh.config.state_dir / "builder" / "work"


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with session.get(url) as reply:
        return reply.status, CIMultiDict(reply.headers), await reply.read()


async def poll(condition: Any) -> None:
    while True:
        if condition():
            return
        await asyncio.sleep(0.01)


def is_iso(body: bytes) -> bool:
    return body[0x8001:0x8006] == b"CD001"


# --- a builder killed mid-build --------------------------------------------------------------------


async def test_builder_killed_mid_build_is_a_quick_503_and_a_retry_succeeds(rmesh: Mesh) -> None:
    sid = create_schematic(rmesh, "killed.mid.build=1")
    url = f"{rmesh.url}/image/{sid}/v1.12.1/metal-amd64.iso"
    before = published(rmesh)
    work = work_dir(rmesh)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        waiting = asyncio.create_task(fetch(session, url))
        # Mid-build: the build's private dir exists and the build has started writing into it.
        async with asyncio.timeout(120):
            await poll(lambda: any(any(d.iterdir()) for d in work.glob("build-*")))
        assert not waiting.done(), "the build finished before it could be killed"
        builder = rmesh.processes["builder"]
        killed_at = time.monotonic()
        os.kill(builder.pid, signal.SIGKILL)
        status, _, body = await asyncio.wait_for(waiting, 60)
        answered_in = time.monotonic() - killed_at
        assert builder.wait(10) == -signal.SIGKILL
        assert status == 503, body
        assert body == b"service temporarily unavailable\n"
        assert answered_in < FAST, f"the waiting request was answered {answered_in:.1f} s after the kill"

        # While it is gone: new requests fail fast, readiness says who is missing, nothing was published.
        started = time.monotonic()
        status, _, body = await fetch(session, url)
        assert (status, body) == (503, b"service temporarily unavailable\n")
        assert time.monotonic() - started < FAST
        status, _, body = http_get(f"{rmesh.url}/readyz")
        assert (status, body) == (503, b"not ready: builder\n")
        assert published(rmesh) == before
        assert incoming(rmesh) == []

        # Back (the test restarts it, as `make run`'s supervisor or Kubernetes would). Once the gateway
        # says it is ready again (its channel has reconnected, within the 2 s reconnect backoff), the
        # retry a client makes after a 503 succeeds.
        rmesh.start_process("builder")
        rmesh.wait_serving("builder", time.monotonic() + 60)
        assert list(work.iterdir()) == [], "the restarted builder keeps the killed build's scratch files"
        async with asyncio.timeout(15):
            await poll(lambda: http_get(f"{rmesh.url}/readyz")[0] == 200)
        status, headers, body = await fetch(session, url)
        assert status == 200, body
        assert is_iso(body) and len(body) == int(headers["Content-Length"])
    after = published(rmesh)
    new = {key: path for key, path in after.items() if key not in before}
    assert new, "the retry published nothing"
    served = [key for key, path in new.items() if json.loads((path / "meta.json").read_bytes())["size"] == len(body)]
    assert len(served) == 1
    stat = await cache_stat(rmesh, served[0])
    assert (stat.asset.size, f'"{stat.asset.digest}"') == (len(body), headers["ETag"])
    assert http_get(f"{rmesh.url}/readyz")[0] == 200


# --- the upstream registry goes away and comes back --------------------------------------------------


def test_registry_outage_is_a_503_and_the_mesh_recovers_without_restarts(rmesh: Mesh, upstream: Upstream) -> None:
    sid = create_schematic(rmesh, "registry.outage=1")
    kernel = f"{rmesh.url}/image/{sid}/v1.12.1/kernel-amd64"
    assert http_get(f"{rmesh.url}/versions")[0] == 200
    assert http_get(f"{rmesh.url}/v2/siderolabs/imager/tags/list")[0] == 200
    processes = pids(rmesh)
    upstream.stop()
    try:
        for url in (f"{rmesh.url}/versions", kernel, f"{rmesh.url}/version/v1.12.1/extensions/official"):
            started = time.monotonic()
            status, headers, body = http_get(url)
            assert status == 503, (url, status, body)
            assert headers["Content-Type"] == "text/plain; charset=utf-8" and one_line(body), body
            assert f"registry {upstream.host} unreachable" in body.decode(), body
            assert time.monotonic() - started < FAST, url
        # The source-image proxy forwards to the same registry: unreachable is a 502 there (spec §9.5).
        status, _, body = http_get(f"{rmesh.url}/v2/siderolabs/imager/tags/list")
        assert (status, body) == (502, b"Bad Gateway\n")
        assert http_get(f"{rmesh.url}/healthz")[0] == 200
    finally:
        upstream.start()  # same port, same storage
    status, _, body = http_get(f"{rmesh.url}/versions")
    assert status == 200 and "v1.12.1" in json.loads(body), body
    status, _, body = http_get(kernel)
    assert status == 200 and body[0x202:0x206] == b"HdrS"
    assert http_get(f"{rmesh.url}/v2/siderolabs/imager/tags/list")[0] == 200
    assert pids(rmesh) == processes and rmesh.exited() == []


# --- a tampered cache ----------------------------------------------------------------------------------


def flip_last_byte(directory: Path) -> None:
    blob = directory / "blob"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))


def grow_blob(directory: Path) -> None:
    with (directory / "blob").open("ab") as handle:
        handle.write(b"#!/bin/sh\n")


def forge_signature(directory: Path) -> None:
    sig = json.loads((directory / "meta.sig").read_bytes())
    key = next(k for k, v in sig.items() if isinstance(v, str) and len(v) > 40)
    value = sig[key]
    sig[key] = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    (directory / "meta.sig").write_text(json.dumps(sig))


def rewrite_metadata(directory: Path) -> None:
    """Replace the blob and describe the new one truthfully: only the signature can tell."""
    evil = b"evil payload\n"
    (directory / "blob").write_bytes(evil)
    meta = json.loads((directory / "meta.json").read_bytes())
    meta["size"] = len(evil)
    meta["digest"] = "sha256:" + hashlib.sha256(evil).hexdigest()
    (directory / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "tamper",
    [flip_last_byte, grow_blob, forge_signature, rewrite_metadata],
    ids=["blob-same-size", "blob-grown", "signature", "metadata"],
)
def test_a_tampered_asset_is_never_served_but_rebuilt(rmesh: Mesh, tamper: Any) -> None:
    sid = create_schematic(rmesh, f"tampered.{tamper.__name__}=1")
    url = f"{rmesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64"
    before = published(rmesh)
    status, headers, original = http_get(url)
    assert status == 200
    (key,) = set(published(rmesh)) - set(before)
    tamper(published(rmesh)[key])
    refused = metric(rmesh, "cache", "image_factory_cache_verification_failures_total")
    # Whatever the client asks for first, it gets the genuine bytes of a rebuilt, re-signed asset.
    status, again_headers, body = http_get(url, {"Range": "bytes=0-"})
    assert status in (200, 206) and body == original, (status, body)
    assert again_headers["ETag"] == headers["ETag"]
    assert http_get(url)[2] == original
    assert metric(rmesh, "cache", "image_factory_cache_verification_failures_total") == refused + 1
    assert (published(rmesh)[key] / "blob").read_bytes() == original
    assert asyncio.run(cache_stat(rmesh, key)).asset.digest == headers["ETag"].strip('"')


# --- a full scratch disk -------------------------------------------------------------------------------


def test_full_build_disk_is_a_clean_error_and_the_builder_recovers(rmesh: Mesh, scratch: Path) -> None:
    sid = create_schematic(rmesh, "disk.full=1")
    url = f"{rmesh.url}/image/{sid}/v1.12.1/metal-amd64.iso"
    work = work_dir(rmesh)
    before = published(rmesh)
    log = scratch / "logs" / "builder.log"
    logged = log.stat().st_size
    mount_tmpfs(work, "8m", remount=True)
    try:
        status, headers, body = http_get(url)
        assert status == 507, body
        assert headers["Content-Type"] == "text/plain; charset=utf-8" and one_line(body), body
        assert body == b"building metal-amd64.iso failed: no space left on the build volume\n"
        assert published(rmesh) == before and incoming(rmesh) == []
        assert list(work.iterdir()) == []  # the failed build's scratch files are gone
        assert http_get(f"{rmesh.url}/readyz")[0] == 200
        assert rmesh.exited() == []
    finally:
        mount_tmpfs(work, SCRATCH_SIZE, remount=True)
    status, headers, body = http_get(url)
    assert status == 200 and is_iso(body), body[:200]
    with log.open("rb") as handle:
        handle.seek(logged)
        assert b"Traceback" not in handle.read(), "a full disk is an expected condition, not a crash"


# --- slow clients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_a_slow_body_times_out_and_the_connection_is_closed(rmesh: Mesh, trickle: bool) -> None:
    host, _, port = rmesh.config.http.listen.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT + FAST) as sock:
        sock.sendall(b"POST /schematics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\ncustomization:")
        started = time.monotonic()
        sock.settimeout(0.2)
        received = b""
        while time.monotonic() - started < BODY_TIMEOUT + FAST:
            if trickle:  # a byte every 200 ms: never idle, never done
                try:
                    sock.sendall(b" ")
                except OSError:
                    break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break  # closed by the server
            received += chunk
        else:
            pytest.fail(f"the connection was still open {BODY_TIMEOUT + FAST:g} s after the headers")
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received[:300]
    assert received.endswith(b"\r\n\r\nrequest body timeout\n"), received[-300:]
    assert b"Connection: close" in received
    assert BODY_TIMEOUT - 0.5 <= elapsed < BODY_TIMEOUT + FAST, elapsed
    assert http_get(f"{rmesh.url}/readyz")[0] == 200


def test_a_body_declared_too_large_is_refused_without_waiting_for_it(rmesh: Mesh) -> None:
    limit = rmesh.config.http.max_body_bytes
    host, _, port = rmesh.config.http.listen.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT + FAST) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /schematics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nc" % (limit + 1))
        response = b""
        while not response.endswith(b"\r\n\r\nrequest body too large\n"):
            chunk = sock.recv(65536)
            assert chunk, response
            response += chunk
        answered_in = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 413 "), response[:300]
    assert answered_in < BODY_TIMEOUT / 2  # at once, not after the body timeout
