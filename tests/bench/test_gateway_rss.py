"""Gateway memory while 8 clients download a 1 GiB+ cached asset at once (target: RSS growth < 64 MiB).

The asset is a real one on the real download path: `GET /image/<id>/v1.9.6/metal-amd64.raw`, the
uncompressed metal disk image of the demo's oldest release (1246 MiB, the imager's minimum raw disk
size; from 1.11 the boot partition doubles and a 1.12 image is 4247 MiB), built once, then served from
the cache. VmRSS of the gateway and of the cache process is read from /proc/<pid>/status at 20 Hz during
the downloads; growth = peak during - value just before. Two rows: the default gateway, which sends
verified cache files with sendfile(2), and a second gateway beside it with `http.send_cache_files:
false`, where every byte streams from the cache over gRPC through the gateway.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from services.mesh.supervisor import Mesh
from tests.bench.common import cold_schematic, drain, print_table, side_mesh, timed_download

CLIENTS = 8
ASSET = "metal-amd64.raw"
VERSION = "v1.9.6"  # the smallest raw disk of the demo release that is still >= 1 GiB
HZ = 20
MIB = 2**20


def rss(pid: int) -> int:
    """VmRSS in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@contextmanager
def sampling(pids: dict[str, int]) -> Iterator[dict[str, list[int]]]:
    """VmRSS samples of each process at HZ while the block runs (the first one taken before it)."""
    samples: dict[str, list[int]] = {name: [rss(pid)] for name, pid in pids.items()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1 / HZ):
            for name, pid in pids.items():
                samples[name].append(rss(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


async def download_all(url: str) -> int:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        return sum(await asyncio.gather(*(drain(session, url) for _ in range(CLIENTS))))


def measure(gateway: Mesh, cache_pid: int, path: str) -> tuple[str, ...]:
    url = f"{gateway.url}{path}"
    timed_download(f"{gateway.url}/versions")  # the gateway's channels are up before the first sample
    pids = {"gateway": gateway.processes["gateway"].pid, "cache": cache_pid}
    with sampling(pids) as samples:
        start = time.perf_counter()
        total = asyncio.run(download_all(url))
        seconds = time.perf_counter() - start
    cells = [f"{total / MIB / seconds:.0f}"]
    for name in ("gateway", "cache"):
        before, peak = samples[name][0], max(samples[name])
        cells.append(f"{before / MIB:.0f} → {peak / MIB:.0f} (+{(peak - before) / MIB:.1f})")
    return tuple(cells)


def test_gateway_rss_during_big_downloads(demo_mesh: Mesh, tmp_path: Path) -> None:
    path = f"/image/{cold_schematic(demo_mesh.url)}/{VERSION}/{ASSET}"
    _, size = timed_download(f"{demo_mesh.url}{path}")  # build and cache it
    assert size >= 2**30
    cache_pid = demo_mesh.processes["cache"].pid
    streaming = side_mesh(demo_mesh, tmp_path / "streaming", ["gateway"], http={"send_cache_files": False})
    try:
        rows = [
            ("sendfile (default)", *measure(demo_mesh, cache_pid, path)),
            ("gRPC stream (send_cache_files: false)", *measure(streaming, cache_pid, path)),
        ]
    finally:
        streaming.stop()
    print_table(
        f"{CLIENTS} clients downloading the cached {VERSION} {ASSET} ({size / MIB:.0f} MiB) at once, VmRSS at {HZ} Hz",
        ("gateway mode", "MiB/s (all clients)", "gateway RSS MiB before → peak (growth)", "cache RSS MiB"),
        rows,
    )
