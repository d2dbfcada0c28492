"""An in-memory cache in front of a schematic store (spec §6.6).

Positive entries never expire (schematics are immutable); a miss is remembered for `negative_ttl`
seconds, and a put always replaces a remembered miss. Concurrent loads of one ID share one load.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from prometheus_client import Gauge

from services.schematic.storage import SchematicStorage, not_found
from services.shared.errors import NotFound

CACHE_SIZE = Gauge("image_factory_schematic_cache_size", "Schematics held in memory")


class CachedStorage:
    def __init__(self, backend: SchematicStorage, *, capacity: int = 100_000, negative_ttl: float = 30.0) -> None:
        self._backend = backend
        self._capacity = capacity
        self._negative_ttl = negative_ttl
        self._present: OrderedDict[str, bytes] = OrderedDict()
        self._missing: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future[bytes]] = {}

    def _remember(self, schematic_id: str, data: bytes) -> None:
        self._missing.pop(schematic_id, None)
        self._present[schematic_id] = data
        while len(self._present) > self._capacity:
            self._present.popitem(last=False)  # LRU by insertion; no touch-on-hit, as the reference
        CACHE_SIZE.set(len(self._present))

    async def head(self, schematic_id: str) -> bool:
        try:
            await self.get(schematic_id)
        except NotFound:
            return False
        return True

    async def get(self, schematic_id: str) -> bytes:
        if (data := self._present.get(schematic_id)) is not None:
            return data
        missing_since = self._missing.get(schematic_id)
        if missing_since is not None and time.monotonic() - missing_since < self._negative_ttl:
            raise not_found(schematic_id)
        flight = self._loading.get(schematic_id)
        if flight is None:
            flight = asyncio.ensure_future(self._load(schematic_id))
            self._loading[schematic_id] = flight
            flight.add_done_callback(lambda _: self._loading.pop(schematic_id, None))
        # shield: one caller giving up must not cancel the load the others wait for
        return await asyncio.shield(flight)

    async def _load(self, schematic_id: str) -> bytes:
        try:
            data = await self._backend.get(schematic_id)
        except NotFound:
            if schematic_id not in self._present:
                self._missing[schematic_id] = time.monotonic()
            raise
        self._remember(schematic_id, data)
        return data

    async def put(self, schematic_id: str, data: bytes) -> None:
        await self._backend.put(schematic_id, data)
        self._remember(schematic_id, data)
