"""The builder's metrics: the reference's labels, single-flight joins, and the build queue's depth."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from services.builder.getorbuild import AssetBuilder, AssetRequest, StoredAsset
from services.builder.progress import ProgressFeed

LABELS = {"talos_version": "v1.12.1", "output_kind": "iso", "arch": "arm64"}


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class MemoryCache:
    def __init__(self) -> None:
        self.stored: dict[str, StoredAsset] = {}

    async def stat(self, key: str) -> StoredAsset | None:
        return self.stored.get(key)

    async def put(self, key: str, media_type: str, file_name: str, path: Path) -> StoredAsset:
        size = len(await asyncio.to_thread(path.read_bytes))
        self.stored[key] = StoredAsset(key, size, "sha256:" + "0" * 64, media_type, file_name, 0)
        return self.stored[key]


def request(key: str, gate: asyncio.Event) -> AssetRequest:
    async def build(work: Path, feed: ProgressFeed) -> Path:
        await gate.wait()
        output = work / "out.iso"
        await asyncio.to_thread(output.write_bytes, b"x" * 1000)
        return output

    return AssetRequest(
        key=key * 64,
        kind="iso",
        media_type="application/x-iso9660-image",
        file_name="a.iso",
        build=build,
        version="v1.12.1",
        arch="arm64",
    )


async def drain(builder: AssetBuilder, wanted: AssetRequest) -> None:
    _ = [event async for event in builder.ensure(wanted)]


async def test_joins_queue_depth_and_labelled_counters(tmp_path: Path) -> None:
    builder = AssetBuilder(MemoryCache(), tmp_path / "work", max_concurrency=1, timeout=60)
    builder.prepare()
    built, cached = (
        sample("image_factory_assets_built_total", LABELS),
        sample("image_factory_assets_delivered_cached_total", LABELS),
    )
    joins = sample("image_factory_assets_build_joins_total", {"output_kind": "iso"})
    cached_bytes = sample("image_factory_assets_cached_bytes_total", LABELS)
    gate = asyncio.Event()
    first, second = request("a", gate), request("b", gate)
    waiters = [asyncio.create_task(drain(builder, first)) for _ in range(3)]  # one build, two joins
    waiters.append(asyncio.create_task(drain(builder, second)))  # queued behind the only slot
    for _ in range(50):
        await asyncio.sleep(0.01)
        if sample("image_factory_assets_builds_waiting") == 1:
            break
    assert sample("image_factory_assets_builds_running") == 1
    assert sample("image_factory_assets_builds_waiting") == 1
    assert sample("image_factory_assets_build_joins_total", {"output_kind": "iso"}) == joins + 2
    gate.set()
    await asyncio.gather(*waiters)
    assert (sample("image_factory_assets_builds_running"), sample("image_factory_assets_builds_waiting")) == (0, 0)
    assert sample("image_factory_assets_built_total", LABELS) == built + 2
    await drain(builder, first)  # now a cache hit
    assert sample("image_factory_assets_delivered_cached_total", LABELS) == cached + 1
    assert sample("image_factory_assets_cached_bytes_total", LABELS) == cached_bytes + 1000
