"""Warm small endpoints: requests/s, p50 and p99 through the gateway vs a bare aiohttp app, same bytes.

Endpoints: `GET /versions`, the re-POST of an existing schematic, and the iPXE script
`GET /pxe/<id>/<version>/metal-amd64` (its cmdline asset already built). Each is loaded by CONNECTIONS
keep-alive aiohttp clients for SECONDS after a short warm-up. Baseline: `tests.bench.bare_app`, a bare
aiohttp app in its own process on loopback, answering the same routes with the bytes the gateway
answered. Ratio = gateway requests/s / bare requests/s (target >= 0.5).

The load generator is Python on the same 2 vCPUs as the servers, so it is itself a large share of the
cost and the ratio leans towards 1: a faster client would show a larger gap, not a smaller one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.mesh.supervisor import Mesh
from tests.bench.common import VERSION, create_schematic, print_table
from tests.support.ports import free_port

CONNECTIONS = 8
SECONDS = 4.0
WARMUP = 0.5
SCHEMATIC = b"customization:\n  extraKernelArgs: [bench.small=1]\n"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: bytes | None = None


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


async def load(base: str, endpoint: Endpoint) -> Load:
    """CONNECTIONS clients in a loop for SECONDS; latencies of the requests after the warm-up."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from, stop = start + WARMUP, start + WARMUP + SECONDS

        async def client() -> None:
            while (now := time.perf_counter()) < stop:
                async with session.request(endpoint.method, base + endpoint.path, data=endpoint.body) as reply:
                    await reply.read()
                    assert reply.status < 300, reply.status
                if now >= measure_from:
                    latencies.append(time.perf_counter() - now)

        await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    latencies.sort()
    return Load(
        rps=len(latencies) / SECONDS,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
    )


def capture(base: str, endpoint: Endpoint) -> dict[str, object]:
    """The gateway's answer as the bare app should replay it."""

    async def fetch() -> dict[str, object]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(endpoint.method, base + endpoint.path, data=endpoint.body) as reply,
        ):
            body = await reply.read()
            assert reply.status < 300, body
            return {
                "method": endpoint.method,
                "path": endpoint.path,
                "status": reply.status,
                "content_type": reply.headers["Content-Type"],
                "body_b64": base64.b64encode(body).decode(),
            }

    return asyncio.run(fetch())


def start_bare_app(answers: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.bare_app", str(port), str(answers)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the bare app did not start")


def test_small_endpoints_vs_bare_aiohttp(demo_mesh: Mesh, tmp_path: Path) -> None:
    sid = create_schematic(demo_mesh.url, SCHEMATIC)
    endpoints = (
        Endpoint("GET /versions", "GET", "/versions"),
        Endpoint("POST /schematics (existing)", "POST", "/schematics", SCHEMATIC),
        Endpoint("GET /pxe/…/metal-amd64", "GET", f"/pxe/{sid}/{VERSION}/metal-amd64"),
    )
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([capture(demo_mesh.url, e) for e in endpoints]))
    port = free_port()
    proc = start_bare_app(answers, port)
    rows = []
    try:
        for endpoint in endpoints:
            ours = asyncio.run(load(demo_mesh.url, endpoint))
            bare = asyncio.run(load(f"http://127.0.0.1:{port}", endpoint))
            rows.append(
                (
                    endpoint.name,
                    f"{ours.rps:.0f}",
                    f"{ours.p50_ms:.1f} / {ours.p99_ms:.1f}",
                    f"{bare.rps:.0f}",
                    f"{bare.p50_ms:.1f} / {bare.p99_ms:.1f}",
                    f"{ours.rps / bare.rps:.2f}x",
                )
            )
    finally:
        proc.terminate()
        proc.wait(10)
    print_table(
        f"warm small endpoints, {CONNECTIONS} keep-alive aiohttp clients, {SECONDS:g} s each",
        ("endpoint", "gateway req/s", "gateway p50 / p99 ms", "bare req/s", "bare p50 / p99 ms", "ratio"),
        rows,
    )
