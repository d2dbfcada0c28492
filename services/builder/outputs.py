"""Build one output kind from a final profile and its pinned inputs (imager spec §0.1 pipeline).

Each function gets a private work dir and returns the path of the finished file in it; the caller
(`getorbuild`) publishes it. Kinds whose builders are not wired yet raise `Unimplemented` (HTTP 501).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from services.builder.adapters.images import ImageStore
from services.builder.adapters.services import BuildInputs
from services.builder.cmdline import build_cmdline
from services.builder.enums import OutputKind
from services.builder.profile import Profile
from services.builder.progress import ProgressFeed
from services.shared.errors import Internal, Unimplemented

# The reference takes boot assets from the imager's amd64 image, which carries both arches (spec §7.2).
IMAGER_PLATFORM = "amd64"


async def imager_file(images: ImageStore, inputs: BuildInputs, arch: str, name: str) -> Path:
    root = await images.rootfs(inputs.imager, IMAGER_PLATFORM)
    path = root / "usr" / "install" / arch / name
    if not path.is_file():
        raise Internal(f"the imager image has no usr/install/{arch}/{name}")
    return path


async def build_output(
    profile: Profile,
    inputs: BuildInputs,
    images: ImageStore,
    schematic_yaml: str,
    work: Path,
    feed: ProgressFeed,
) -> Path:
    kind = profile.output.kind
    arch = profile.arch.value
    if kind is OutputKind.CMDLINE:
        async with feed.step("cmdline", "rendering the kernel command line"):
            out = work / "cmdline"
            out.write_text(build_cmdline(profile))
            return out
    if kind is OutputKind.KERNEL:
        async with feed.step("fetch", "fetching the kernel from the imager image", arch=arch):
            kernel = await imager_file(images, inputs, arch, "vmlinuz")
            out = work / "kernel"
            await asyncio.to_thread(shutil.copyfile, kernel, out)
            return out
    raise Unimplemented(f"building {kind.value} assets is not implemented yet")
