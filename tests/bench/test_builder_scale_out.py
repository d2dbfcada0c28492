"""Builder scale-out: N distinct cold builds with one builder process vs two.

One builder: the demo mesh, all N requests at once to its gateway. Two builders: a second builder and a
second gateway pointing at it start beside the demo mesh (own state dir and ports, the same schematic,
catalog, cache and signer), and the N requests are split between the two gateways. Every request is a
cold ISO build of its own schematic; the second builder has already pulled and unpacked the upstream
images (one warm-up build), like the first. Speed-up = wall time with one / wall time with two.

The machine has 2 vCPUs, shared with the rest of the mesh and the client, and one builder already runs
its N builds concurrently (builder.max_concurrency = 6) with the tools in parallel subprocesses; a second
process only adds a second Python event loop for the builder's own steps.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from services.mesh.supervisor import Mesh
from tests.bench.common import VERSION, builds, cold_schematic, drain, print_table, side_mesh, timed_download

BUILDS = 4
ROUNDS = 2
ASSET = "metal-amd64.iso"


async def fetch_all(urls: list[str]) -> float:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(drain(session, url) for url in urls))
        return time.perf_counter() - start


def cold_round(gateways: list[Mesh]) -> float:
    """Wall time of BUILDS cold builds, request i sent to gateway i mod len(gateways)."""
    urls = []
    for i in range(BUILDS):
        gateway = gateways[i % len(gateways)]
        urls.append(f"{gateway.url}/image/{cold_schematic(gateway.url)}/{VERSION}/{ASSET}")
    return asyncio.run(fetch_all(urls))


def test_builder_scale_out(demo_mesh: Mesh, tmp_path: Path) -> None:
    second = side_mesh(demo_mesh, tmp_path / "second", ["builder", "gateway"])
    try:
        timed_download(f"{second.url}/image/{cold_schematic(second.url)}/{VERSION}/{ASSET}")  # warm-up
        timed_download(f"{demo_mesh.url}/image/{cold_schematic(demo_mesh.url)}/{VERSION}/{ASSET}")
        times: dict[int, list[float]] = {1: [], 2: []}
        split: list[tuple[float, float]] = []
        for _ in range(ROUNDS):
            before = (builds(demo_mesh), builds(second))
            times[1].append(cold_round([demo_mesh]))
            middle = (builds(demo_mesh), builds(second))
            times[2].append(cold_round([demo_mesh, second]))
            after = (builds(demo_mesh), builds(second))
            assert middle == (before[0] + BUILDS, before[1]), (before, middle)
            split.append((after[0] - middle[0], after[1] - middle[1]))
    finally:
        second.stop()
    assert all(s == (BUILDS / 2, BUILDS / 2) for s in split), split
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print_table(
        f"{BUILDS} distinct cold {ASSET} builds at once, median of {ROUNDS} rounds (2 vCPU)",
        ("builder processes", "wall s (each round)", "wall s median", "speed-up"),
        [
            (1, ", ".join(f"{t:.1f}" for t in times[1]), f"{one:.1f}", "1.00x"),
            (2, ", ".join(f"{t:.1f}" for t in times[2]), f"{two:.1f}", f"{one / two:.2f}x"),
        ],
    )
