"""UKI, ISO and installer outputs from a final profile (imager spec §5, §6.1, §6.2, §9).

Both start from the initramfs with extensions and the kernel command line of the same profile, so an
ISO boots exactly what the `initramfs-…` and `cmdline-…` assets of the same schematic describe.
Secure Boot signing is not done here yet: `-secureboot` profiles are refused earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.builder import quirks
from services.builder.assets.installer import InstallerSpec, OverlaySpec, build_installer_image, docker_archive
from services.builder.assets.iso import GrubPayload, IsoOptions, SdBootPayload, build_iso, select_iso_kind
from services.builder.assets.uki import UkiOptions, build_uki, os_release, talos_profiles
from services.builder.cmdline import build_cmdline
from services.builder.enums import Bootloader
from services.builder.profile import Profile
from services.builder.progress import ProgressFeed
from services.builder.steps.xorriso import IsoIdentity
from services.schematic.canonical import options_yaml
from services.shared.errors import Unimplemented

# The reference's process-wide SOURCE_DATE_EPOCH (spec §1.1): same inputs, same bytes.
SOURCE_DATE_EPOCH = 1559424892


async def make_uki(profile: Profile, kernel: Path, initramfs: Path, stub: Path, profile_kind: str, out: Path) -> Path:
    version = profile.version
    assert version is not None
    cmdline = build_cmdline(profile)
    profiles = talos_profiles(profile_kind, cmdline) if quirks.supports_uki_profiles(version) else ()
    await build_uki(
        UkiOptions(
            stub=stub,
            kernel=kernel,
            initrd=initramfs,
            cmdline=cmdline,
            os_release=os_release(profile.name or "Talos", version.tag),
            source_date_epoch=SOURCE_DATE_EPOCH,
            profiles=profiles,
        ),
        out,
    )
    return out


async def build_uki_output(
    profile: Profile, kernel: Path, initramfs: Path, stub: Path, work: Path, feed: ProgressFeed
) -> Path:
    if profile.secureboot:
        raise Unimplemented("Secure Boot UKIs are not implemented yet")
    async with feed.step("uki", "assembling the unified kernel image"):
        return await make_uki(profile, kernel, initramfs, stub, "uki", work / "talos.efi")


@dataclass(frozen=True)
class BootFiles:
    """What the imager image provides for one arch (imager spec §1.1), fetched by the caller."""

    kernel: Path
    initramfs: Path  # with extensions
    sd_stub: Path
    sd_boot: Path


async def build_iso_output(profile: Profile, files: BootFiles, work: Path, feed: ProgressFeed) -> Path:
    if profile.secureboot:
        raise Unimplemented("Secure Boot ISOs are not implemented yet")
    version = profile.version
    assert version is not None
    iso_options = profile.output.iso_options
    bootloader = iso_options.bootloader if iso_options is not None else Bootloader.NONE
    if bootloader is Bootloader.NONE:
        bootloader = quirks.default_bootloader(
            bootloader, secureboot=profile.secureboot, arch=profile.arch, version=version
        )
    kind = select_iso_kind(
        secure_boot=profile.secureboot,
        iso_supports_bootloader=quirks.iso_supports_setting_bootloader(version),
        use_sdboot_for_uefi=quirks.use_sd_boot_for_uefi(version),
        bootloader=bootloader.value,
    )
    arch = profile.arch.value
    cmdline = build_cmdline(profile)
    grub = None
    sdboot = None
    if kind.value in ("grub", "hybrid"):
        grub = GrubPayload(
            files.kernel, files.initramfs, cmdline, reset_option=quirks.supports_reset_grub_option(version)
        )
    if kind.value in ("uefi", "hybrid"):
        async with feed.step("uki", "assembling the UKI for the ISO"):
            uki = await make_uki(profile, files.kernel, files.initramfs, files.sd_stub, "iso", work / "iso-uki.efi")
        sdboot = SdBootPayload(sdboot=files.sd_boot, uki=uki, version=version.tag, arch=arch)
    label = f"Talos-{version.tag}" if quirks.supports_iso_label(version) else None
    options = IsoOptions(kind=kind, identity=IsoIdentity(SOURCE_DATE_EPOCH, label), grub=grub, sdboot=sdboot)
    out = work / "talos.iso"
    async with feed.step("iso", f"writing the {kind.value} ISO with xorriso"):
        scratch = work / "iso-work"
        scratch.mkdir()
        await build_iso(options, out, scratch)
    return out


async def build_installer_output(
    profile: Profile, files: BootFiles, base_layout: Path, overlay_tree: Path | None, work: Path, feed: ProgressFeed
) -> Path:
    """`installer-<arch>.tar` / `<platform>-installer-<arch>.tar`: a docker archive (imager spec §9)."""
    if profile.secureboot:
        raise Unimplemented("Secure Boot installers are not implemented yet")
    version = profile.version
    assert version is not None
    unified = quirks.use_sd_boot_for_uefi(version)
    uki = None
    if unified:
        async with feed.step("uki", "assembling the UKI for the installer"):
            uki = await make_uki(
                profile, files.kernel, files.initramfs, files.sd_stub, "installer", work / "vmlinuz.efi"
            )
    base = profile.input.base_installer
    image_ref = f"{base.image}:{base.tag}" if base is not None else f"installer:{version.tag}"
    overlay = None
    if overlay_tree is not None and profile.overlay is not None:
        overlay = OverlaySpec(
            tree=overlay_tree, name=profile.overlay.name, extra_options=options_yaml(profile.overlay.options)
        )
    spec = InstallerSpec(
        arch=profile.arch,
        base=base_layout,
        image_ref=image_ref,
        source_date_epoch=SOURCE_DATE_EPOCH,
        use_sd_boot_for_uefi=unified,
        uki=uki,
        sd_boot=files.sd_boot if unified else None,
        kernel=None if unified else files.kernel,
        initramfs=None if unified else files.initramfs,
        overlay=overlay,
    )
    async with feed.step("installer", "layering the installer image"):
        image = await build_installer_image(spec, work / "installer-layout")
        out = work / "installer.tar"
        await docker_archive([image], out)
    return out
