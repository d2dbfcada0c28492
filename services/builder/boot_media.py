"""UKI, ISO and installer outputs from a final profile (imager spec §5, §6.1, §6.2, §9).

Both start from the initramfs with extensions and the kernel command line of the same profile, so an
ISO boots exactly what the `initramfs-…` and `cmdline-…` assets of the same schematic describe.
Secure Boot outputs are signed through the signer service (the builder never holds a key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.builder import quirks
from services.builder.assets.disk import DiskQuirks, DiskSpec, build_disk
from services.builder.assets.installer import InstallerSpec, OverlaySpec, build_installer_image, docker_archive
from services.builder.assets.iso import GrubPayload, IsoOptions, SdBootPayload, build_iso, select_iso_kind
from services.builder.assets.uki import UkiOptions, build_uki, os_release, talos_profiles
from services.builder.cmdline import build_cmdline
from services.builder.enums import Bootloader, EnrollKeys
from services.builder.profile import Profile
from services.builder.progress import ProgressFeed
from services.builder.secureboot import build_signed_uki, sign_sdboot, write_enrollment_files
from services.builder.secureboot.signer import SecureBootSigner as Signer
from services.builder.steps.overlay import OverlayInstaller
from services.builder.steps.xorriso import IsoIdentity
from services.schematic.canonical import options_yaml
from services.shared.errors import Internal

# The reference's process-wide SOURCE_DATE_EPOCH (spec §1.1): same inputs, same bytes.
SOURCE_DATE_EPOCH = 1559424892


async def make_uki(
    profile: Profile,
    kernel: Path,
    initramfs: Path,
    stub: Path,
    profile_kind: str,
    out: Path,
    signer: Signer | None = None,
    overlay_kernel_args: tuple[str, ...] = (),
) -> Path:
    """A UKI for `profile`; with Secure Boot it carries `.pcrpkey`/`.pcrsig` and is Authenticode-signed
    through the signer (imager spec §6.3, §6.4). `overlay_kernel_args` come from the overlay's `get-options`."""
    version = profile.version
    assert version is not None
    cmdline = build_cmdline(profile, overlay_kernel_args=overlay_kernel_args)
    profiles = talos_profiles(profile_kind, cmdline) if quirks.supports_uki_profiles(version) else ()
    options = UkiOptions(
        stub=stub,
        kernel=kernel,
        initrd=initramfs,
        cmdline=cmdline,
        os_release=os_release(profile.name or "Talos", version.tag),
        source_date_epoch=SOURCE_DATE_EPOCH,
        profiles=profiles,
    )
    if not profile.secureboot:
        await build_uki(options, out)
        return out
    if signer is None:
        raise Internal("a Secure Boot UKI needs the signer")
    scratch = out.with_name(out.name + ".work")
    scratch.mkdir()
    await build_signed_uki(options, signer, out, scratch)
    return out


@dataclass(frozen=True)
class BootFiles:
    """What the imager image provides for one arch (imager spec §1.1), fetched by the caller, and the
    schematic's SBC overlay ready to run (imager spec §10), if any."""

    kernel: Path
    initramfs: Path  # with extensions
    sd_stub: Path
    sd_boot: Path
    overlay: OverlayInstaller | None = None

    @property
    def overlay_kernel_args(self) -> tuple[str, ...]:
        return self.overlay.options.kernel_args if self.overlay is not None else ()


async def build_uki_output(profile: Profile, files: BootFiles, work: Path, feed: ProgressFeed, signer: Signer) -> Path:
    step = "signing the Secure Boot UKI" if profile.secureboot else "assembling the unified kernel image"
    async with feed.step("uki", step):
        return await make_uki(
            profile, files.kernel, files.initramfs, files.sd_stub, "uki", work / "talos.efi", signer,
            files.overlay_kernel_args,
        )  # fmt: skip


async def build_iso_output(profile: Profile, files: BootFiles, work: Path, feed: ProgressFeed, signer: Signer) -> Path:
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
    cmdline = build_cmdline(profile, overlay_kernel_args=files.overlay_kernel_args)
    grub = None
    sdboot = None
    if kind.value in ("grub", "hybrid"):
        grub = GrubPayload(
            files.kernel, files.initramfs, cmdline, reset_option=quirks.supports_reset_grub_option(version)
        )
    if kind.value in ("uefi", "hybrid"):
        async with feed.step("uki", "assembling the UKI for the ISO"):
            uki = await make_uki(
                profile, files.kernel, files.initramfs, files.sd_stub, "iso", work / "iso-uki.efi", signer,
                files.overlay_kernel_args,
            )  # fmt: skip
        sdboot = SdBootPayload(sdboot=files.sd_boot, uki=uki, version=version.tag, arch=arch)
        if profile.secureboot:
            sdboot = await secure_boot_payload(profile, files, uki, work, signer)
    label = f"Talos-{version.tag}" if quirks.supports_iso_label(version) else None
    options = IsoOptions(kind=kind, identity=IsoIdentity(SOURCE_DATE_EPOCH, label), grub=grub, sdboot=sdboot)
    out = work / "talos.iso"
    async with feed.step("iso", f"writing the {kind.value} ISO with xorriso"):
        scratch = work / "iso-work"
        scratch.mkdir()
        await build_iso(options, out, scratch)
    return out


async def build_installer_output(
    profile: Profile,
    files: BootFiles,
    base_layout: Path,
    overlay_tree: Path | None,
    work: Path,
    feed: ProgressFeed,
    signer: Signer,
) -> Path:
    """`installer-<arch>.tar` / `<platform>-installer-<arch>.tar`: a docker archive (imager spec §9)."""
    version = profile.version
    assert version is not None
    unified = quirks.use_sd_boot_for_uefi(version) or profile.secureboot
    uki = None
    sd_boot = files.sd_boot
    if unified:
        async with feed.step("uki", "assembling the UKI for the installer"):
            uki = await make_uki(
                profile, files.kernel, files.initramfs, files.sd_stub, "installer", work / "vmlinuz.efi", signer,
                files.overlay_kernel_args,
            )  # fmt: skip
        if profile.secureboot:
            sd_boot = await sign_sdboot(signer, files.sd_boot, work / "systemd-boot.efi.signed")
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
        sd_boot=sd_boot if unified else None,
        secureboot=profile.secureboot,
        kernel=None if unified else files.kernel,
        initramfs=None if unified else files.initramfs,
        overlay=overlay,
    )
    async with feed.step("installer", "layering the installer image"):
        image = await build_installer_image(spec, work / "installer-layout")
        out = work / "installer.tar"
        await docker_archive([image], out)
    return out


async def secure_boot_payload(
    profile: Profile, files: BootFiles, uki: Path, work: Path, signer: Signer
) -> SdBootPayload:
    """Signed systemd-boot, the certificate and PK/KEK/db for enrollment on the ESP (imager §5.3, §6.5)."""
    version = profile.version
    assert version is not None
    signed_sdboot = await sign_sdboot(signer, files.sd_boot, work / "systemd-boot.signed.efi")
    secure = profile.input.secureboot
    include_well_known = bool(secure and secure.include_well_known_certs)
    enrollment = await write_enrollment_files(signer, signer, work / "keys", include_well_known=include_well_known)
    iso_options = profile.output.iso_options
    enroll = iso_options.sd_boot_enroll_keys if iso_options is not None else EnrollKeys.IF_SAFE
    return SdBootPayload(
        sdboot=signed_sdboot,
        uki=uki,
        version=version.tag,
        arch=profile.arch.value,
        secure_boot_enroll=enroll.value,
        extra_files=enrollment.iso_extra_files(),
    )


async def build_disk_output(profile: Profile, files: BootFiles, work: Path, feed: ProgressFeed, signer: Signer) -> Path:
    """Disk images for every platform and format (imager spec §7): GPT, ESP, BOOT, META, conversion."""
    version = profile.version
    options = profile.output.image_options
    assert version is not None and options is not None and options.disk_format is not None
    bootloader = quirks.default_bootloader(
        options.bootloader, secureboot=profile.secureboot, arch=profile.arch, version=version
    )
    uki = sd_boot = None
    enroll_keys: tuple[tuple[str, Path], ...] = ()
    if bootloader.has_sd_boot:
        async with feed.step("uki", "assembling the UKI for the disk image"):
            uki = await make_uki(
                profile, files.kernel, files.initramfs, files.sd_stub, "image", work / "disk-uki.efi", signer,
                files.overlay_kernel_args,
            )  # fmt: skip
        sd_boot = files.sd_boot
        if profile.secureboot:
            payload = await secure_boot_payload(profile, files, uki, work, signer)
            sd_boot = payload.sdboot
            enroll_keys = tuple((Path(name).name, path) for name, path in payload.extra_files if name.endswith(".auth"))
    enroll = options.sd_boot_enroll_keys.value if profile.secureboot else None
    spec = DiskSpec(
        arch=profile.arch,
        version=version.tag,
        bootloader=bootloader,
        cmdline=build_cmdline(profile, overlay_kernel_args=files.overlay_kernel_args),
        disk_size=options.disk_size,
        quirks=DiskQuirks.for_version(version),
        kernel=files.kernel,
        initramfs=files.initramfs,
        uki=uki,
        sd_boot=sd_boot,
        name=profile.name or "Talos",
        secureboot=profile.secureboot,
        enroll_mode=enroll if enroll_keys else None,
        enroll_keys=enroll_keys,
        sector_size=options.disk_sector_size or 512,
        disk_format=options.disk_format,
        disk_format_options=options.disk_format_options,
        compression=profile.output.out_format,
        meta_values=profile.customization.meta_contents,
        source_date_epoch=SOURCE_DATE_EPOCH,
        overlay=files.overlay,
    )
    out = work / "disk.img"
    async with feed.step("disk", f"writing a {bootloader.value} {options.disk_format.value} disk image"):
        scratch = work / "disk-work"
        scratch.mkdir()
        await build_disk(spec, scratch, out)
    return out
