"""The embedded schematic store: one file per schematic, written atomically, verified on read."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from services.schematic.storage import matches_id, not_found, valid_id

log = logging.getLogger(__name__)


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob("*/*.tmp"):
            leftover.unlink(missing_ok=True)

    def _path(self, schematic_id: str) -> Path:
        return self.root / schematic_id[:2] / f"{schematic_id}.yaml"

    async def head(self, schematic_id: str) -> bool:
        return valid_id(schematic_id) and await asyncio.to_thread(self._path(schematic_id).is_file)

    async def get(self, schematic_id: str) -> bytes:
        if not valid_id(schematic_id):
            raise not_found(schematic_id)
        try:
            data = await asyncio.to_thread(self._path(schematic_id).read_bytes)
        except FileNotFoundError:
            raise not_found(schematic_id) from None
        if not matches_id(schematic_id, data):
            log.error("stored schematic does not match its ID", extra={"schematic_id": schematic_id})
            raise not_found(schematic_id)
        return data

    async def put(self, schematic_id: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(schematic_id), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
