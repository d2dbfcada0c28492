"""Where schematics live: canonical YAML bytes keyed by their ID (the SHA-256 of those bytes)."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from services.shared.errors import NotFound

_ID = re.compile(r"^[0-9a-f]{64}$")


class SchematicStorage(Protocol):
    async def head(self, schematic_id: str) -> bool: ...

    async def get(self, schematic_id: str) -> bytes:
        """The stored canonical YAML; raises `NotFound` (see `not_found`)."""
        ...

    async def put(self, schematic_id: str, data: bytes) -> None: ...


def not_found(schematic_id: str) -> NotFound:
    """The reference's text (spec §6.6), used for malformed IDs too."""
    return NotFound(f'schematic ID "{schematic_id}" not found')


def valid_id(schematic_id: str) -> bool:
    return bool(_ID.match(schematic_id))


def matches_id(schematic_id: str, data: bytes) -> bool:
    """Stored bytes must hash to their ID; anything else is corruption and reads as missing."""
    return hashlib.sha256(data).hexdigest() == schematic_id
