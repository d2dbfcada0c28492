"""zstd / xz for initramfs segments (imager spec §4.1, §4.5 step 1, §4.7 step 2, §11).

zstd goes through the `zstd` CLI (one door: `run_tool`) because the project pins no zstd binding and
Python 3.11 has none in the standard library; `zstd -T0` output does not depend on the thread count
(checked: -T1/-T2/-T4/-T0 give identical bytes), so it stays reproducible. xz uses the standard
library's `lzma` with the flags upstream passes to `xz` (`-C crc32 -0 -e`): the kernel's xz decoder
wants CRC32, and in-process compression is single-threaded, hence deterministic.
"""

from __future__ import annotations

import asyncio
import lzma
import os
import shutil
from pathlib import Path
from typing import Literal

from services.shared.errors import InvalidArgument
from services.shared.tools import run_tool

Compression = Literal["zstd", "xz"]

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NEWC_MAGIC = b"070701"
_CHUNK = 1 << 20
# §4.7 `xz -C crc32 -0 -e`: preset 0 plus "extreme".
XZ_PRESET = 0 | lzma.PRESET_EXTREME


def zstd_compress_argv(src: Path) -> list[str]:
    """§4.7 step 2 `zstd -T0 -18 -c --quiet`, reading a file instead of a pipe."""
    return ["zstd", "-T0", "-18", "-c", "--quiet", os.fspath(src)]


def zstd_decompress_argv(src: Path) -> list[str]:
    return ["zstd", "-d", "-c", "--quiet", os.fspath(src)]


def detect(head: bytes) -> Literal["xz", "zstd", "none"]:
    """Compression of an initramfs by magic. Upstream (§4.5) says "xz if FD 37 7A 58, else zstd"; we also
    accept an uncompressed newc archive and reject anything else with a clear message."""
    if head.startswith(XZ_MAGIC[:4]):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(NEWC_MAGIC):
        return "none"
    raise InvalidArgument("initramfs is neither xz nor zstd compressed nor a newc cpio archive")


async def compress_file(src: Path, dst: Path, compression: Compression) -> None:
    """Compress `src` into `dst` as one zstd frame (level 18) or one xz stream (CRC32, preset 0e)."""
    if compression == "zstd":
        await run_tool(zstd_compress_argv(src), stdout_path=dst)
    else:
        await asyncio.to_thread(_xz_file, src, dst)


async def decompress_file(src: Path, dst: Path) -> None:
    """Decompress an initramfs (§4.5 step 1); every concatenated frame/stream is decoded."""
    with src.open("rb") as f:
        kind = detect(f.read(len(XZ_MAGIC)))
    if kind == "zstd":
        await run_tool(zstd_decompress_argv(src), stdout_path=dst)
    elif kind == "xz":
        await asyncio.to_thread(_unxz_file, src, dst)
    else:
        await asyncio.to_thread(shutil.copyfile, src, dst)


def _xz_file(src: Path, dst: Path) -> None:
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=XZ_PRESET)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(compressor.compress(chunk))
        fout.write(compressor.flush())


def _unxz_file(src: Path, dst: Path) -> None:
    # lzma.open reads concatenated .xz streams (and their padding) like `xz -d`.
    with lzma.open(src, "rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, _CHUNK)
