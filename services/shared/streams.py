"""Moving byte streams between gRPC streams and files with bounded memory.

File I/O runs in a worker thread so a large transfer never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024  # 1 MiB per gRPC message: well under the message limit, few round trips


async def write_chunks(path: Path, chunks: AsyncIterable[bytes], *, limit: int | None = None) -> int:
    """Write every chunk to `path` (created/truncated), fsync it, return the byte count.

    `limit` caps the total size; exceeding it raises ValueError before more is written.
    """
    handle: BinaryIO = await asyncio.to_thread(path.open, "wb")
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if limit is not None and total > limit:
                raise ValueError(f"stream exceeds {limit} bytes")
            await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(handle.flush)
        await asyncio.to_thread(_fsync, handle)
    finally:
        await asyncio.to_thread(handle.close)
    return total


def _fsync(handle: BinaryIO) -> None:
    os.fsync(handle.fileno())


async def read_chunks(
    path: Path, *, offset: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Yield `length` bytes of `path` from `offset` (to the end when None), `chunk_size` at a time."""
    handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, offset)
        remaining = length
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = await asyncio.to_thread(handle.read, size)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
