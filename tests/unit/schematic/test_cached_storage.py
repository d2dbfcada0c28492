"""The in-memory cache in front of a store: hits, negative TTL, single flight (spec §6.6)."""

from __future__ import annotations

import asyncio

import pytest

from services.schematic.storage import not_found
from services.schematic.storage.cached import CachedStorage

ID = "b" * 64


class CountingStorage:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.gets = 0
        self.puts = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def head(self, schematic_id: str) -> bool:
        return schematic_id in self.data

    async def get(self, schematic_id: str) -> bytes:
        self.gets += 1
        await self.gate.wait()
        if schematic_id not in self.data:
            raise not_found(schematic_id)
        return self.data[schematic_id]

    async def put(self, schematic_id: str, data: bytes) -> None:
        self.puts += 1
        self.data[schematic_id] = data


async def test_hits_are_served_from_memory() -> None:
    backend = CountingStorage()
    backend.data[ID] = b"x"
    cache = CachedStorage(backend)
    assert await cache.get(ID) == b"x"
    assert await cache.get(ID) == b"x"
    assert backend.gets == 1


async def test_misses_are_remembered_for_the_negative_ttl_and_puts_override_them() -> None:
    backend = CountingStorage()
    cache = CachedStorage(backend, negative_ttl=60)
    for _ in range(3):
        with pytest.raises(Exception, match="not found"):
            await cache.get(ID)
    assert backend.gets == 1
    await cache.put(ID, b"now here")
    assert await cache.get(ID) == b"now here"
    assert backend.gets == 1


async def test_negative_entries_expire() -> None:
    backend = CountingStorage()
    cache = CachedStorage(backend, negative_ttl=0.01)
    with pytest.raises(Exception, match="not found"):
        await cache.get(ID)
    backend.data[ID] = b"appeared elsewhere"  # e.g. another replica stored it
    await asyncio.sleep(0.02)
    assert await cache.get(ID) == b"appeared elsewhere"


async def test_concurrent_loads_share_one_backend_call() -> None:
    backend = CountingStorage()
    backend.data[ID] = b"x"
    backend.gate.clear()
    cache = CachedStorage(backend)
    waiters = [asyncio.ensure_future(cache.get(ID)) for _ in range(20)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()  # one impatient caller must not cancel the shared load
    backend.gate.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [b"x"] * 19
    assert backend.gets == 1


async def test_capacity_evicts_oldest() -> None:
    backend = CountingStorage()
    cache = CachedStorage(backend, capacity=2)
    for index in range(3):
        await cache.put(f"{index:064x}", b"v")
    backend.data.clear()
    assert await cache.get(f"{2:064x}") == b"v"
    with pytest.raises(Exception, match="not found"):
        await cache.get(f"{0:064x}")
