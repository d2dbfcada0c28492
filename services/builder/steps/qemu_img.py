"""qemu-img conversions of the raw disk (imager spec §7.8; qemu-utils 7.2 on Debian 12, §11).

* qcow2: `-o cluster_size=8k` comes from the profile's `diskFormatOptions` (factory §3.1).
* vhd: qemu-img calls it `vpc`; Azure's `subformat=fixed,force_size` keeps the virtual size equal to the raw
  size (without force_size, CHS rounding grows it: lab REPORT §6). A fixed VHD is only a footer, so format
  probing calls it raw: every reader must pass `-f vpc`.
* vmdk (inside the OVA): Debian has no open-vmdk `vmdk-convert`, so `subformat=streamOptimized` it is (§7.8,
  §14.12).
Talos passes `-o ""` for empty options; qemu-img 7.2 rejects that (`Invalid option list`), so `-o` is
omitted then (§14.14).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

from services.builder.enums import ImageFormat
from services.shared.tools import run_tool

VMDK_OPTIONS: Final = "subformat=streamOptimized"
_TIMEOUT: Final = 1800  # multi-GiB images; streamOptimized compresses every cluster


def qemu_format(disk_format: ImageFormat) -> str:
    """`-O` value of a Talos disk format (`ova` → the vmdk that goes into the OVA)."""
    target = disk_format.qemu_img_format()
    if target is None:
        raise ValueError("raw images need no conversion")
    return target


def convert_argv(src: Path, dst: Path, target: str, options: str = "") -> list[str]:
    """`qemu-img convert -f raw -O <target> [-o <options>] <src> <dst>` (§7.8)."""
    if target not in ("qcow2", "vpc", "vmdk"):
        raise ValueError(f"unsupported qemu-img target format {target!r}")
    opts = ["-o", options] if options else []
    return ["qemu-img", "convert", "-f", "raw", "-O", target, *opts, os.fspath(src), os.fspath(dst)]


def info_argv(image: Path, fmt: str) -> list[str]:
    """`qemu-img info` with an explicit format (a fixed VHD probes as raw)."""
    return ["qemu-img", "info", "-f", fmt, "--output=json", os.fspath(image)]


async def convert(src: Path, dst: Path, target: str, options: str = "") -> None:
    await run_tool(convert_argv(src, dst, target, options), timeout=_TIMEOUT)


async def convert_in_place(path: Path, disk_format: ImageFormat, options: str) -> None:
    """Talos' in-place conversion: `<p>` → `<p>.in`, convert back to `<p>`, drop `.in` (§7.8)."""
    source = path.with_name(path.name + ".in")
    await asyncio.to_thread(path.rename, source)
    await convert(source, path, qemu_format(disk_format), options)
    await asyncio.to_thread(source.unlink)
