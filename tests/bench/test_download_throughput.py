"""Cached download throughput through the gateway vs the distribution registry serving the same bytes.

Baseline: the same file pushed as a blob to the same loopback registry the demo release lives in, read
with the same client. Ratio = gateway throughput / registry throughput (target >= 0.9), single stream
and 8 parallel streams.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from devtools.demo_release import DemoRelease
from services.mesh.supervisor import Mesh
from services.shared.oci import RegistryClient

ROUNDS = 3


async def fetch(session: aiohttp.ClientSession, url: str) -> int:
    size = 0
    async with session.get(url) as reply:
        assert reply.status == 200
        async for chunk in reply.content.iter_chunked(1024 * 1024):
            size += len(chunk)
    return size


async def throughput(url: str, streams: int) -> float:
    """Best of ROUNDS: MiB/s summed over `streams` concurrent downloads."""
    best = 0.0
    async with aiohttp.ClientSession() as session:
        for _ in range(ROUNDS):
            start = time.perf_counter()
            sizes = await asyncio.gather(*(fetch(session, url) for _ in range(streams)))
            best = max(best, sum(sizes) / (1024 * 1024) / (time.perf_counter() - start))
    return best


def test_cached_download_vs_registry(demo_mesh: Mesh, demo_release: DemoRelease, tmp_path: Path) -> None:
    request = urllib.request.Request(
        f"{demo_mesh.url}/schematics", data=b"customization:\n  extraKernelArgs: [bench]\n", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        sid = json.loads(reply.read())["id"]
    asset_url = f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-amd64.iso"
    with urllib.request.urlopen(asset_url, timeout=600) as reply:  # build once; every later read is cached
        data = reply.read()

    async def push() -> str:
        async with RegistryClient(demo_release.registry, insecure=True) as client:
            return await client.push_blob("bench/blob", data)

    digest = asyncio.run(push())
    blob_url = f"http://{demo_release.registry}/v2/bench/blob/blobs/{digest}"
    rows = []
    for streams in (1, 8):
        ours = asyncio.run(throughput(asset_url, streams))
        baseline = asyncio.run(throughput(blob_url, streams))
        rows.append((streams, ours, baseline, ours / baseline))
    print(f"\ncached download of a {len(data) / 2**20:.0f} MiB ISO (best of {ROUNDS})")
    print("streams | gateway MiB/s | registry MiB/s | ratio")
    for streams, ours, baseline, ratio in rows:
        print(f"{streams:7d} | {ours:13.0f} | {baseline:14.0f} | {ratio:5.2f}x")
    assert all(ratio > 0 for *_, ratio in rows)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])
