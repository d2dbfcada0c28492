"""External packers, each cached by a hash of its input: mksquashfs, zstd, xz.

Argv builders are pure (STYLE.md "a builder step"); the runners go through `run_tool`.
"""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

from services.shared.tools import run_tool

from .cache import CacheDir

# Real Talos builds initramfs with `zstd -T0 -<level>` (imager spec §1.1); zstd output does not
# depend on the worker count, so -T0 stays reproducible across machines.
ZSTD_LEVEL = 19


def squashfs_argv(out: Path, compression: str) -> list[str]:
    """mksquashfs reading a tar on stdin; the root dir (absent from a tar) gets fixed owner and mode.

    Times come from SOURCE_DATE_EPOCH, which `run_tool` always sets: mksquashfs 4.5.1 refuses
    `-mkfs-time`/`-all-time` next to it, and with `-tar` it applies it to the superblock and to every
    inode (checked with `unsquashfs -lls`), so the image is byte-for-byte reproducible.
    """
    return [
        "mksquashfs", "-", os.fspath(out), "-tar",
        "-comp", compression,
        "-all-root", "-root-mode", "755",
        "-noappend", "-no-xattrs", "-quiet", "-no-progress",
    ]  # fmt: skip


def zstd_argv(level: int = ZSTD_LEVEL) -> list[str]:
    return ["zstd", f"-{level}", "-T0", "-c", "-q"]


def _key(data: bytes, *params: str) -> str:
    h = hashlib.sha256()
    for p in params:
        h.update(p.encode() + b"\0")
    h.update(data)
    return h.hexdigest()


async def squashfs_from_tar(cache: CacheDir, tar: bytes, compression: str, epoch: int) -> bytes:
    """A squashfs image of `tar` (uid/gid 0, times = epoch)."""
    out = cache.compressed / f"{_key(tar, 'squashfs', compression, str(epoch))}.sqsh"
    if not out.is_file():
        partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
        env = {"SOURCE_DATE_EPOCH": str(epoch)}
        await run_tool(squashfs_argv(partial, compression), stdin=tar, env_extra=env, timeout=300)
        partial.replace(out)
    return out.read_bytes()


async def zstd(cache: CacheDir, data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    out = cache.compressed / f"{_key(data, 'zstd', str(level))}.zst"
    if not out.is_file():
        result = await run_tool(zstd_argv(level), stdin=data, timeout=600)
        cache.write_atomic(out, result.stdout)
    return out.read_bytes()


def xz(data: bytes) -> bytes:
    """The kernel's xz decoder wants CRC32 checks (`xz --check=crc32`); pre-1.8 Talos used xz."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def squashfs_compression(zstd_capable: bool) -> str:
    return "zstd" if zstd_capable else "xz"
