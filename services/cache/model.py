"""What the cache stores besides the bytes: one small, signed metadata document per asset."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

from services.cache.verified_files import FileIdentity
from services.shared.errors import InvalidArgument, OutOfRange, PayloadTooLarge

# Keys are hex hashes (builder asset keys, digests); anything else could escape the store's directory.
_KEY = re.compile(r"^[0-9a-f]{16,128}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidArgument(f"invalid asset key {key!r}: expected 16-128 lowercase hex characters")
    return key


@dataclass(frozen=True)
class AssetMeta:
    key: str
    size: int
    digest: str  # "sha256:<hex>" of the bytes
    media_type: str
    file_name: str
    created_unix: int

    def to_json(self) -> bytes:
        """Canonical bytes: the signature covers exactly these, so field order and spacing are fixed."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    def document_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes) -> AssetMeta:
        raw = json.loads(data)
        meta = cls(
            key=str(raw["key"]),
            size=int(raw["size"]),
            digest=str(raw["digest"]),
            media_type=str(raw["media_type"]),
            file_name=str(raw["file_name"]),
            created_unix=int(raw["created_unix"]),
        )
        if meta.to_json() != data or not _DIGEST.match(meta.digest) or meta.size < 0:
            raise ValueError("metadata is not in canonical form")
        return meta


@dataclass(frozen=True)
class PutRequest:
    """The header of a Put: everything but the bytes."""

    key: str
    media_type: str
    file_name: str
    expected_size: int = 0  # 0 = unknown


class SizeLimit:
    """Counts the bytes of a Put stream and stops it as soon as it exceeds the cache's limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0

    async def watch(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                raise PayloadTooLarge(f"asset exceeds the cache limit of {self.limit} bytes")
            yield chunk


def received_meta(request: PutRequest, size: int, digest: str) -> AssetMeta:
    """The metadata of a completed Put, once its size is checked against what the header announced."""
    if request.expected_size and size != request.expected_size:
        raise InvalidArgument(f"asset {request.key}: received {size} bytes, expected {request.expected_size}")
    return AssetMeta(
        key=request.key,
        size=size,
        digest=digest,
        media_type=request.media_type,
        file_name=request.file_name,
        created_unix=int(time.time()),
    )


@dataclass(frozen=True)
class Signature:
    """A cosign simple-signing payload and its base64 signature (from the signer)."""

    payload: bytes
    signature_base64: str

    def to_json(self) -> bytes:
        return json.dumps(
            {"payload": self.payload.decode(), "signature": self.signature_base64}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Signature:
        raw = json.loads(data)
        return cls(payload=str(raw["payload"]).encode(), signature_base64=str(raw["signature"]))


@dataclass(frozen=True)
class LocatedBlob:
    """A verified asset and the local file holding its bytes, as that file was when it was checked."""

    meta: AssetMeta
    path: Path
    identity: FileIdentity


def byte_span(meta: AssetMeta, offset: int, length: int) -> int:
    """How many bytes a read of `length` (0 = to the end) from `offset` returns; OutOfRange if none can."""
    if offset < 0 or length < 0 or offset > meta.size or (offset == meta.size and meta.size > 0):
        raise OutOfRange(f"range {offset}+{length} is outside asset {meta.key} of {meta.size} bytes")
    return meta.size - offset if length == 0 else min(length, meta.size - offset)
