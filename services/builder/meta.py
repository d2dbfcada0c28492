"""META values: the keys (imager spec §8.1) and their kernel-command-line encoding (imager §8.2).

`encode_meta` produces the value after `talos.environment=INSTALLER_META_BASE64=`. When the joined
text is longer than 256 bytes and the Talos version allows it (≥1.6.3), it is gzip'ed first.

Gzip bytes: the header is written as Go's `gzip.Writer` at `BestCompression` writes it (no name,
mtime 0, XFL 2, OS 255), but the deflate stream comes from zlib level 9, which is not byte-equal to
Go's `compress/flate`. No vector in the specs covers a compressed value, and the only consumer (Talos'
`DecodeValues`, i.e. gunzip) accepts any valid stream; our asset keys are our own (`asset_key.py`).
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Sequence
from enum import IntEnum
from typing import Final

from services.schematic.model import MetaValue

GZIP_THRESHOLD: Final = 256  # bytes of the joined text (`len(string)` in Go)
ENV_PREFIX: Final = "INSTALLER_META_BASE64="
_GZIP_MAGIC: Final = b"\x1f\x8b"


class MetaKey(IntEnum):
    """Talos `pkg/machinery/meta/constants.go`; tags 0-5 are reserved (0 ends the on-disk list)."""

    UPGRADE = 0x06
    STAGED_UPGRADE_IMAGE_REF = 0x07
    STAGED_UPGRADE_INSTALL_OPTIONS = 0x08
    STATE_ENCRYPTION_CONFIG = 0x09
    METAL_NETWORK_PLATFORM_CONFIG = 0x0A
    DOWNLOAD_URL_CODE = 0x0B
    USER_RESERVED_1 = 0x0C
    USER_RESERVED_2 = 0x0D
    USER_RESERVED_3 = 0x0E
    UUID_OVERRIDE = 0x0F
    UNIQUE_MACHINE_TOKEN = 0x10
    DISK_IMAGE_BOOTLOADER = 0x11  # wiped on first boot


def join_meta(values: Sequence[MetaValue]) -> bytes:
    """`0x<hex key>=<value>` joined by `;` (Go `Value.String`: lowercase hex, no padding)."""
    return ";".join(f"0x{v.key:x}={v.value}" for v in values).encode()


def encode_meta(values: Sequence[MetaValue], *, allow_gzip: bool) -> str:
    """Go `meta.Values.Encode(allowGzip)`; pass `allow_gzip=quirks.supports_compressed_encoded_meta(v)`."""
    raw = join_meta(values)
    if allow_gzip and len(raw) > GZIP_THRESHOLD:
        raw = go_gzip(raw)
    return base64.b64encode(raw).decode("ascii")


def decode_meta(text: str) -> list[MetaValue]:
    """Go `meta.DecodeValues`: base64, gunzip when it looks like gzip, split `;`, base-0 uint8 keys."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid META encoding: {exc}") from None
    if len(raw) >= 10 and raw.startswith(_GZIP_MAGIC):
        raw = zlib.decompress(raw, wbits=31)
    if not raw:
        return []
    values = []
    for item in raw.decode().split(";"):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"invalid META value {item!r}")
        number = int(key, 0)
        if not 0 <= number <= 0xFF:
            raise ValueError(f"META key out of range: {key}")
        values.append(MetaValue(key=number, value=value))
    return values


def go_gzip(data: bytes) -> bytes:
    """A gzip member with Go's header fields for `BestCompression` (see the module docstring)."""
    header = _GZIP_MAGIC + bytes([8, 0]) + struct.pack("<I", 0) + bytes([2, 0xFF])
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
