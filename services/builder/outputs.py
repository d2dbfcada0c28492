"""Build one output kind from a final profile and its pinned inputs (imager spec §0.1 pipeline).

Each function gets a private work dir and returns the path of the finished file in it; the caller
(`getorbuild`) publishes it. Kinds whose builders are not wired yet raise `Unimplemented` (HTTP 501).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from services.builder import boot_media, quirks
from services.builder.adapters.images import ImageStore
from services.builder.adapters.services import BuildInputs
from services.builder.assets.extensions import ExtensionDir, ExtensionSource, ExtensionTarball
from services.builder.assets.initramfs import InitramfsOptions, InitramfsSpec, build_initramfs
from services.builder.assets.virtual_extensions import SchematicExtension as SchematicTar
from services.builder.assets.virtual_extensions import embedded_config_tar, schematic_tar
from services.builder.cmdline import build_cmdline
from services.builder.enums import OutputKind
from services.builder.profile import Profile
from services.builder.progress import ProgressFeed
from services.builder.secureboot.signer import SecureBootSigner as Signer
from services.builder.steps import overlay
from services.builder.steps.overlay import OverlayInstaller
from services.catalog.versions import Version
from services.schematic.canonical import options_yaml
from services.shared.errors import Internal, Unimplemented

# The reference takes boot assets from the imager's amd64 image, which carries both arches (spec §7.2).
IMAGER_PLATFORM = "amd64"
# The factory runs its overlay installers on the build host (imager §1.5); ours are amd64 machines.
HOST_ARCH = "amd64"


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
    signer: Signer,
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
    if kind is OutputKind.INITRAMFS:
        return await build_initramfs_output(profile, inputs, images, schematic_yaml, work, feed)
    if kind in (OutputKind.UKI, OutputKind.ISO, OutputKind.INSTALLER, OutputKind.IMAGE):
        initramfs = await build_initramfs_output(profile, inputs, images, schematic_yaml, work, feed)
        files = boot_media.BootFiles(
            kernel=await imager_file(images, inputs, arch, "vmlinuz"),
            initramfs=initramfs,
            sd_stub=await imager_file(images, inputs, arch, "systemd-stub.efi"),
            sd_boot=await imager_file(images, inputs, arch, "systemd-boot.efi"),
            overlay=await overlay_installer(profile, inputs, images, feed),
        )
        if kind is OutputKind.UKI:
            return await boot_media.build_uki_output(profile, files, work, feed, signer)
        if kind is OutputKind.INSTALLER:
            async with feed.step("fetch", "fetching the base installer image", arch=arch):
                base = await images.layout(inputs.installer_base, arch)
                overlay = await images.rootfs(inputs.overlay, arch) if inputs.overlay is not None else None
            return await boot_media.build_installer_output(profile, files, base, overlay, work, feed, signer)
        if kind is OutputKind.IMAGE:
            return await boot_media.build_disk_output(profile, files, work, feed, signer)
        return await boot_media.build_iso_output(profile, files, work, feed, signer)
    raise Unimplemented(f"building {kind.value} assets is not implemented yet")


async def overlay_installer(
    profile: Profile, inputs: BuildInputs, images: ImageStore, feed: ProgressFeed
) -> OverlayInstaller | None:
    """The schematic's overlay, asked for its options (imager §10 `get-options`): its kernel arguments go
    on every command line of the build, its partition offset into disk images. Its installer is the one of
    the host-arch image; `artifacts/` holds every target arch's files (§1.5)."""
    if profile.overlay is None:
        return None
    if inputs.overlay is None:
        raise Internal(f"the catalog resolved no image for overlay {profile.overlay.name}")
    name = profile.overlay.name
    async with feed.step("overlay", f"asking overlay {name} for its options", overlay=name):
        root = await images.rootfs(inputs.overlay, HOST_ARCH)
        installer = root / "installers" / name
        if not installer.is_file():
            raise Internal(f"overlay image {profile.overlay.image} has no installers/{name}")
        extra = options_yaml(profile.overlay.options)
        options = await overlay.get_options(installer, extra)
    return OverlayInstaller(installer=installer, artifacts=root / "artifacts", options=options, extra_options=extra)


async def extension_sources(
    profile: Profile, inputs: BuildInputs, images: ImageStore, schematic_yaml: str, work: Path, feed: ProgressFeed
) -> tuple[ExtensionSource, ...]:
    """Official extensions in schematic order, then the schematic extension, then embedded config (§4)."""
    arch = profile.arch.value
    sources: list[ExtensionSource] = []
    for name, image in inputs.extensions:
        async with feed.step("fetch", f"fetching extension {name}", extension=name):
            sources.append(ExtensionDir(await images.rootfs(image, arch)))
    virtual = work / "virtual"
    virtual.mkdir()
    schematic = profile.input.schematic_extension
    if schematic is not None:
        tar = virtual / "schematic.tar"
        tar.write_bytes(
            schematic_tar(
                SchematicTar(
                    schematic_id=schematic.schematic_id,
                    author=schematic.author,
                    schematic_yaml=schematic_yaml if schematic.with_extra_info else "",
                )
            )
        )
        sources.append(ExtensionTarball(tar))
    config = profile.customization.embedded_machine_configuration
    if config:
        tar = virtual / "embedded-config.tar"
        tar.write_bytes(embedded_config_tar(config.encode()))
        sources.append(ExtensionTarball(tar))
    return tuple(sources)


async def build_initramfs_output(
    profile: Profile, inputs: BuildInputs, images: ImageStore, schematic_yaml: str, work: Path, feed: ProgressFeed
) -> Path:
    """The imager's initramfs with every extension appended (imager §4); untouched when there are none."""
    arch = profile.arch.value
    version = required_version(profile)
    async with feed.step("fetch", "fetching the initramfs from the imager image", arch=arch):
        base = await imager_file(images, inputs, arch, "initramfs.xz")
    sources = await extension_sources(profile, inputs, images, schematic_yaml, work, feed)
    out = work / "initramfs.xz"
    if not sources:
        await asyncio.to_thread(shutil.copyfile, base, out)
        return out
    options = InitramfsOptions(
        talos_version=str(version),
        compression="zstd" if quirks.initramfs_compression(version) is quirks.Codec.ZSTD else "xz",
        usr_lib_paths=quirks.modules_path(version).startswith("/usr"),
    )
    async with feed.step("initramfs", f"packing {len(sources)} extension(s) into the initramfs"):
        scratch = work / "initramfs-work"
        scratch.mkdir()
        await build_initramfs(InitramfsSpec(initramfs=base, extensions=sources, options=options), scratch, out)
    return out


def required_version(profile: Profile) -> Version:
    if profile.version is None:  # enhance() always sets it; a profile without one is a bug
        raise Internal("profile has no Talos version")
    return profile.version
