"""The generated `modules.dep` extension (imager spec §4.5, Talos `kernel_modules.go`).

Extension modules only load if `modules.dep` and friends know them, but those indexes live in the
read-only Talos rootfs. So: take the kernel's module tree out of the *original* initramfs' `rootfs.sqsh`,
lay every extension's `<K>` tree over it, run `depmod`, and ship only the resulting `modules.*` files
as one more squashfs layer, `modules.dep.sqsh`, listed last.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from services.builder.assets.extension_files import copy_over, mkdir_all
from services.builder.assets.extension_manifest import Manifest, Metadata
from services.builder.assets.extensions import Extension
from services.builder.steps import cpio
from services.builder.steps.depmod import DepmodSpec, run_depmod, write_config
from services.builder.steps.initramfs_codec import decompress_file
from services.builder.steps.squashfs import unsquash_path
from services.shared.errors import Internal, InvalidArgument

logger = logging.getLogger(__name__)

MODULES_DEP = "modules.dep"
ROOTFS_ASSET = "rootfs.sqsh"


def modules_dep_manifest(kernel_version: str) -> Manifest:
    """§4.5 step 7; its `version` is the kernel version, not `v1alpha1` (never validated)."""
    return Manifest(
        kernel_version,
        Metadata(
            name=MODULES_DEP,
            version=kernel_version,
            author="Talos Machinery",
            description="Combined modules.dep for all extensions",
        ),
    )


def _extract_rootfs(archive: Path, dest: Path) -> None:
    with archive.open("rb") as f:
        if not cpio.extract_member(f, ROOTFS_ASSET, dest):
            raise Internal(f"error extracting cpio: {ROOTFS_ASSET} not found in the initramfs")


def _kernel_version(modules: Path) -> str:
    entries = list(modules.iterdir()) if modules.is_dir() else []
    if len(entries) != 1 or not entries[0].is_dir():
        raise Internal(f"invalid kernel modules path: {modules}")
    return entries[0].name


def _collect(source: Path, dest: Path) -> None:
    """§4.5 step 6: move the regular `modules.*` files directly under `source` into `dest`."""
    for path in sorted(source.iterdir(), key=lambda p: p.name):
        st = path.lstat()
        if path.name.startswith("modules.") and stat.S_ISREG(st.st_mode):
            shutil.move(path, dest / path.name)
            (dest / path.name).chmod(stat.S_IMODE(st.st_mode) & 0o755)


async def build_modules_dep(
    initramfs: Path,
    module_dirs: Sequence[Path],
    work_dir: Path,
    *,
    modules_path: str,
) -> Extension:
    """`module_dirs` are the extensions' `<rootfs>/<modules_path>` directories, in list order;
    `modules_path` is `usr/lib/modules` (≥1.10) or `lib/modules`. Returns the extension whose rootfs
    is `work_dir/modules.dep`."""
    scratch = work_dir / "depmod"
    await asyncio.to_thread(scratch.mkdir, parents=True)
    archive, rootfs = scratch / "initramfs.cpio", scratch / ROOTFS_ASSET
    await decompress_file(initramfs, archive)
    await asyncio.to_thread(_extract_rootfs, archive, rootfs)
    await asyncio.to_thread(archive.unlink)

    tree = scratch / "modules"
    await unsquash_path(rootfs, tree, f"/{modules_path}")
    modules = tree / modules_path
    kernel_version = await asyncio.to_thread(_kernel_version, modules)
    for directory in module_dirs:
        source = directory / kernel_version
        if not source.is_dir():
            raise InvalidArgument(f"copying kernel modules from {directory} failed: no {kernel_version} directory")
        await asyncio.to_thread(copy_over, source, modules / kernel_version, move=False)

    # depmod looks under <basedir>/lib/modules: drop that suffix from the modules path.
    basedir = tree.joinpath(*modules_path.split("/")[:-2])
    config = await asyncio.to_thread(write_config, scratch / "depmod.conf")
    logger.info("running depmod for %s over %d extension(s)", kernel_version, len(module_dirs))
    await run_depmod(DepmodSpec(basedir=basedir, kernel_version=kernel_version, config=config))

    staging = work_dir / MODULES_DEP
    dest = staging.joinpath(*modules_path.split("/"), kernel_version)
    await asyncio.to_thread(mkdir_all, dest, 0o755)
    await asyncio.to_thread(staging.chmod, 0o755)
    await asyncio.to_thread(_collect, modules / kernel_version, dest)
    return Extension(MODULES_DEP, staging, modules_dep_manifest(kernel_version))
