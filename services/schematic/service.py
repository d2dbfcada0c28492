"""Create and get schematics: parse strictly, canonicalize, store once (spec §2.2, §2.3, §6)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import Counter

from services.schematic.canonical import canonical_yaml
from services.schematic.ids import schematic_id
from services.schematic.model import Schematic
from services.schematic.parsing import decode_schematic, parse_schematic
from services.schematic.storage import SchematicStorage

GETS = Counter("image_factory_schematic_get_total", "Schematic reads")
CREATES = Counter("image_factory_schematic_create_total", "Schematics stored")
DUPLICATES = Counter("image_factory_schematic_duplicate_create_total", "Creates of an already stored schematic")


@dataclass(frozen=True)
class StoredSchematic:
    id: str
    canonical_yaml: str
    schematic: Schematic


class Schematics:
    def __init__(self, storage: SchematicStorage) -> None:
        self._storage = storage
        self._creating: dict[str, asyncio.Lock] = {}

    async def create(self, body: bytes) -> tuple[StoredSchematic, bool]:
        """Returns the stored schematic and whether this call stored it (False: it already existed)."""
        schematic = parse_schematic(body)
        text = canonical_yaml(schematic)
        ident = schematic_id(schematic)
        stored = StoredSchematic(ident, text, schematic)
        # One writer per ID: 100 identical concurrent creates store one object.
        lock = self._creating.setdefault(ident, asyncio.Lock())
        try:
            async with lock:
                if await self._storage.head(ident):
                    DUPLICATES.inc()
                    return stored, False
                await self._storage.put(ident, text.encode())
                CREATES.inc()
                return stored, True
        finally:
            if not lock.locked():
                self._creating.pop(ident, None)

    async def get(self, ident: str) -> StoredSchematic:
        GETS.inc()
        data = await self._storage.get(ident)
        # Re-marshal what was stored, as the reference does, so the answer is always canonical.
        schematic = decode_schematic(data)
        return StoredSchematic(ident, canonical_yaml(schematic), schematic)
