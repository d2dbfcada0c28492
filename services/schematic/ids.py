"""Schematic ID: lowercase hex SHA-256 of the canonical YAML bytes (spec §6.3, Go `Schematic.ID`)."""

from __future__ import annotations

import hashlib

from services.schematic.canonical import canonical_yaml
from services.schematic.model import Schematic


def schematic_id(schematic: Schematic) -> str:
    return hashlib.sha256(canonical_yaml(schematic).encode()).hexdigest()
