"""The META partition in Talos' ADV format (imager spec §8.3; values §8.1, §8.4; flow §7.1 steps 1 and 9).

Two identical 256 KiB blocks at offsets 0 and 256 KiB, big-endian: magic1, then `tag, size, value` records,
zeros, the SHA-256 of the block (computed with that field zeroed) and magic2. The last 1 KiB of the partition
is the legacy syslinux ADV, which image mode writes back exactly as read: zeros.

Tag order: Talos iterates a Go map (random order); we keep first-appearance order with later duplicates
overwriting the value (§8.4 "later duplicates overwrite"), so the bytes are reproducible. Readers compare
tags, not positions.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import Final

from services.builder.meta import MetaKey
from services.schematic.model import MetaValue

BLOCK_SIZE: Final = 256 * 1024
DATA_LENGTH: Final = BLOCK_SIZE - 40  # magic1 + checksum + magic2
META_PARTITION_SIZE: Final = 1024 * 1024
MAGIC1: Final = 0x5A4B3C2D
MAGIC2: Final = 0xA5B4C3D2
_CHECKSUM: Final = slice(BLOCK_SIZE - 36, BLOCK_SIZE - 4)
DUAL_BOOT_VALUE: Final = MetaValue(key=MetaKey.DISK_IMAGE_BOOTLOADER, value="dual-boot")


def merge_values(values: Iterable[MetaValue]) -> dict[int, bytes]:
    """Tag → value bytes; a repeated key keeps its first position and its last value."""
    tags: dict[int, bytes] = {}
    for value in values:
        if not 0 < value.key <= 0xFF:
            # tag 0 is the end marker (§8.1): a reader would stop there and lose everything after it
            raise ValueError(f"META key {value.key:#x} is not a usable tag (1-255)")
        tags[value.key] = value.value.encode()
    return tags


def adv_block(tags: dict[int, bytes]) -> bytes:
    """One 256 KiB copy; capacity check as Talos' `SetTagBytes`: 20 + Σ(8 + len) ≤ 262 104 bytes."""
    if 20 + sum(8 + len(v) for v in tags.values()) > DATA_LENGTH:
        raise ValueError("META values do not fit the 256 KiB ADV block")
    block = bytearray(BLOCK_SIZE)
    struct.pack_into(">I", block, 0, MAGIC1)
    struct.pack_into(">I", block, BLOCK_SIZE - 4, MAGIC2)
    offset = 4
    for tag, value in tags.items():
        struct.pack_into(">II", block, offset, tag, len(value))
        block[offset + 8 : offset + 8 + len(value)] = value
        offset += 8 + len(value)
    block[_CHECKSUM] = hashlib.sha256(block).digest()
    return bytes(block)


def meta_image(values: Sequence[MetaValue], size: int = META_PARTITION_SIZE) -> bytes:
    """The whole META partition; all zeros when there are no values (§7.1 step 9 writes nothing then)."""
    if size < 2 * BLOCK_SIZE + 1024:
        raise ValueError(f"META partition of {size} bytes cannot hold two ADV copies and the legacy ADV")
    if not values:
        return bytes(size)
    block = adv_block(merge_values(values))
    return (block + block).ljust(size, b"\0")


def parse_adv(data: bytes) -> dict[int, bytes]:
    """Read the first valid copy (Talos' reader: block 1, then block 2); raises ValueError when none is."""
    errors = []
    for start in (0, BLOCK_SIZE):
        block = bytearray(data[start : start + BLOCK_SIZE])
        try:
            return _parse_block(block)
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError("; ".join(errors))


def _parse_block(block: bytearray) -> dict[int, bytes]:
    if len(block) != BLOCK_SIZE or struct.unpack_from(">I", block, 0)[0] != MAGIC1:
        raise ValueError("ADV: bad magic1")
    if struct.unpack_from(">I", block, BLOCK_SIZE - 4)[0] != MAGIC2:
        raise ValueError("ADV: bad magic2")
    checksum = bytes(block[_CHECKSUM])
    block[_CHECKSUM] = bytes(32)
    if hashlib.sha256(block).digest() != checksum:
        raise ValueError("ADV: checksum mismatch")
    tags, offset, end = {}, 4, BLOCK_SIZE - 36
    while end - offset >= 8:
        tag, size = struct.unpack_from(">II", block, offset)
        if tag == 0:
            break
        if offset + 8 + size > end:
            raise ValueError(f"ADV: tag {tag} value runs past the block")
        tags[tag] = bytes(block[offset + 8 : offset + 8 + size])
        offset += 8 + size
    return tags
