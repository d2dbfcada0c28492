"""50 concurrent identical cold requests: how many builds, and how long, compared with one cold request.

Each round asks for the ISO of a fresh schematic, once alone and once from 50 clients at the same time
(another fresh schematic, so both are cold). Builds are counted with the builder's
`image_factory_assets_built_total` (must grow by exactly 1 for the 50). Times: until every client has
its response headers (the build, which the 50 share) and until every client has the whole body (which
adds 50 downloads of the ISO). Ratio = 50 clients / 1 client, medians of the time to all headers (target <= 1.1).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from services.mesh.supervisor import Mesh
from tests.bench.common import VERSION, builds, cold_schematic, print_table

CLIENTS = 50
ROUNDS = 3
ASSET = "metal-amd64.iso"


async def one_client(session: aiohttp.ClientSession, url: str, start: float) -> tuple[float, float, int]:
    """(seconds to headers, seconds to last byte, bytes) for one GET."""
    size = 0
    async with session.get(url) as reply:
        headers = time.perf_counter() - start
        assert reply.status == 200, await reply.text()
        async for chunk in reply.content.iter_chunked(1024 * 1024):
            size += len(chunk)
    return headers, time.perf_counter() - start, size


async def cold_round(url: str, clients: int) -> tuple[float, float, int]:
    """(all headers s, all bodies s, bytes per client) for `clients` concurrent GETs of `url`."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        start = time.perf_counter()
        done = await asyncio.gather(*(one_client(session, url, start) for _ in range(clients)))
    sizes = {size for *_, size in done}
    assert len(sizes) == 1, f"clients got different sizes: {sizes}"
    return max(h for h, _, _ in done), max(b for _, b, _ in done), sizes.pop()


def test_concurrent_identical_cold_requests(demo_mesh: Mesh) -> None:
    results: dict[int, list[tuple[float, float, float]]] = {1: [], CLIENTS: []}
    size = 0
    for _ in range(ROUNDS):
        for clients in (1, CLIENTS):
            url = f"{demo_mesh.url}/image/{cold_schematic(demo_mesh.url)}/{VERSION}/{ASSET}"
            before = builds(demo_mesh)
            headers, bodies, size = asyncio.run(cold_round(url, clients))
            results[clients].append((builds(demo_mesh) - before, headers, bodies))
    rows = []
    single = statistics.median(h for _, h, _ in results[1])
    for clients, runs in results.items():
        headers = statistics.median(h for _, h, _ in runs)
        rows.append(
            (
                clients,
                ", ".join(str(int(n)) for n, _, _ in runs),
                f"{min(h for _, h, _ in runs):.2f}",
                f"{headers:.2f}",
                f"{statistics.median(b for _, _, b in runs):.2f}",
                f"{headers / single:.2f}x",
            )
        )
    print_table(
        f"{CLIENTS} identical cold requests for {ASSET} ({size / 2**20:.0f} MiB) vs one, {ROUNDS} rounds",
        ("clients", "builds per round", "all headers best s", "all headers median s", "all bodies median s", "ratio"),
        rows,
    )
    assert all(n == 1 for n, _, _ in results[CLIENTS]), "concurrent identical requests built more than once"
