"""Initramfs with system extensions (imager spec §4.2 procedure, §4.6 `extensions.yaml`, §4.7 rebuild).

The original initramfs bytes are never rewritten (§4.1). The output is

    [ newc cpio, uncompressed: kernel/, …/microcode/{AuthenticAMD,GenuineIntel}.bin ]  # only with microcode
    [ original initramfs bytes, unchanged ]
    [ one zstd frame (or xz stream): newc cpio of <dir>.sqsh…, extensions.yaml, modules.dep.sqsh, usr/lib/firmware/… ]

Every cpio member has mtime = SOURCE_DATE_EPOCH and every file we create gets an explicit mode, so the
same inputs give the same bytes (§13; upstream leaves cpio mtimes unnormalized, we do not).
Version quirks arrive as plain options; nothing here parses quirks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.builder.assets.extension_files import move_early_files
from services.builder.assets.extension_manifest import Layer, extensions_yaml
from services.builder.assets.extensions import (
    ExtensionSource,
    Labels,
    list_extensions,
    unpack_extension,
    validate_constraints,
)
from services.builder.assets.modules_dep import build_modules_dep
from services.builder.steps import cpio
from services.builder.steps.initramfs_codec import Compression, compress_file
from services.builder.steps.squashfs import SquashfsSpec, make_squashfs
from services.shared.tools import DEFAULT_SOURCE_DATE_EPOCH

logger = logging.getLogger(__name__)

EXTENSIONS_CONFIG = "extensions.yaml"
_UNCOMPRESSED_ROOT = "kernel"  # §4.7: `kernel` and `kernel/…` go to the uncompressed cpio


@dataclass(frozen=True)
class InitramfsOptions:
    """Version-dependent choices, decided by the caller from quirks (imager spec §2.5).

    `compression`: `UseZSTDCompression` (≥1.8 zstd, else xz) for both the extension squashfs images and
    the appended cpio. `usr_lib_paths`: ≥1.10 modules/firmware live under `usr/lib`, else `lib`.
    `talos_version`: checked against each manifest's constraint (core version only)."""

    talos_version: str
    compression: Compression = "zstd"
    usr_lib_paths: bool = True
    source_date_epoch: int = int(DEFAULT_SOURCE_DATE_EPOCH)

    @property
    def modules_path(self) -> str:
        return "usr/lib/modules" if self.usr_lib_paths else "lib/modules"

    @property
    def firmware_path(self) -> str:
        return "usr/lib/firmware" if self.usr_lib_paths else "lib/firmware"


@dataclass(frozen=True)
class InitramfsSpec:
    """`initramfs`: the original `initramfs.xz`; `extensions`: in profile order (official extensions, then
    the schematic virtual extension, then embedded-config last)."""

    initramfs: Path
    extensions: tuple[ExtensionSource, ...]
    options: InitramfsOptions


async def build_initramfs(spec: InitramfsSpec, work_dir: Path, out: Path) -> None:
    """Build into `out.partial`, fsync, rename to `out`. `work_dir` must be empty and private to this build."""
    partial = out.with_name(out.name + ".partial")
    if not spec.extensions:  # §4.2: nothing to add, the output is the input
        await asyncio.to_thread(_concat, [spec.initramfs], partial)
        await asyncio.to_thread(os.replace, partial, out)
        return
    opts = spec.options
    extensions_root = work_dir / "extensions"
    labels: dict[str, Labels] = {}
    for j, source in enumerate(spec.extensions):  # §4.2 step 2
        labels[str(j)] = await unpack_extension(source, extensions_root / str(j), work_dir / "layers" / str(j))
    extensions = await asyncio.to_thread(list_extensions, extensions_root)  # step 3
    validate_constraints(extensions, opts.talos_version)  # step 4

    with_modules = [ext.rootfs / opts.modules_path for ext in extensions if (ext.rootfs / opts.modules_path).exists()]
    if with_modules:  # step 5
        extensions.append(
            await build_modules_dep(spec.initramfs, with_modules, work_dir, modules_path=opts.modules_path)
        )

    tree = work_dir / "initramfs"
    await asyncio.to_thread(tree.mkdir)
    squashfs = SquashfsSpec(compression=opts.compression, mtime=opts.source_date_epoch)
    layers = []
    for ext in extensions:  # step 6
        await asyncio.to_thread(move_early_files, ext.rootfs, tree, opts.firmware_path)
        image = f"{ext.directory}.sqsh"
        logger.info("squashing extension %s into %s", ext.manifest.metadata.name, image)
        await make_squashfs(ext.rootfs, tree / image, squashfs, _rootfs_labels(labels.get(ext.directory, {})))
        layers.append(Layer(image, ext.manifest.metadata))
    await asyncio.to_thread(_write_config, tree / EXTENSIONS_CONFIG, extensions_yaml(layers))  # step 7

    await _rebuild(spec, tree, work_dir, partial)  # step 8
    await asyncio.to_thread(os.replace, partial, out)


def _rootfs_labels(labels: Labels) -> dict[str, str]:
    """Labels recorded relative to the extension dir → relative to its rootfs ("" = the rootfs itself)."""
    result = {}
    for path, label in labels.items():
        if path == "rootfs":
            result[""] = label
        elif path.startswith("rootfs/"):
            result[path.removeprefix("rootfs/")] = label
    return result


def _write_config(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def listings(tree: Path) -> tuple[list[str], list[str]]:
    """§4.7 walk: (compressed, uncompressed) relative paths, each level sorted, parents first."""
    compressed: list[str] = []
    uncompressed: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            rel = prefix + entry.name
            top = rel.split("/", 1)[0]
            (uncompressed if top == _UNCOMPRESSED_ROOT else compressed).append(rel)
            if entry.is_dir():  # Go os.Stat: follows symlinks
                walk(entry, rel + "/")

    walk(tree, "")
    return compressed, uncompressed


def _write_cpio(tree: Path, names: list[str], dest: Path, mtime: int) -> None:
    with dest.open("wb") as f:
        cpio.write_newc(f, cpio.members_from_tree(tree, names), mtime=mtime)


def _concat(parts: list[Path], dest: Path) -> None:
    with dest.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    dest.chmod(0o644)


async def _rebuild(spec: InitramfsSpec, tree: Path, work_dir: Path, dest: Path) -> None:
    """§4.7: [uncompressed cpio of kernel/…] + original bytes + compressed cpio of everything else."""
    mtime = spec.options.source_date_epoch
    compressed, uncompressed = await asyncio.to_thread(listings, tree)
    parts = []
    if uncompressed:
        early = work_dir / "early.cpio"
        await asyncio.to_thread(_write_cpio, tree, uncompressed, early, mtime)
        parts.append(early)
    parts.append(spec.initramfs)
    archive = work_dir / "extensions.cpio"
    packed = work_dir / f"extensions.cpio.{'zst' if spec.options.compression == 'zstd' else 'xz'}"
    await asyncio.to_thread(_write_cpio, tree, compressed, archive, mtime)
    await compress_file(archive, packed, spec.options.compression)
    await asyncio.to_thread(_concat, [*parts, packed], dest)
