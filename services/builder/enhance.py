"""Profile enhancement from a schematic (factory spec §4, imager spec §2.7), without I/O.

The Go `EnhanceFromSchematic` pulls catalogs and images while it goes; here the caller fetches first
and hands over what was fetched: the version's extension and overlay catalogs and, for an overlay,
the decoded `profiles/<name>.yaml` of the overlay image (`required_overlay` says which one). Image
layouts, signer assets and the schematic tarball are referenced by identity in the profile and their
digests go into `asset_key`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from services.builder import quirks
from services.builder.enums import Bootloader, EnrollKeys, OutputKind
from services.builder.overlay_merge import merge_overlay_profile
from services.builder.profile import (
    BaseInstaller,
    Customization,
    ExtensionInput,
    ImageOptions,
    Input,
    ISOOptions,
    OverlayInput,
    Profile,
    SchematicExtension,
    SecureBootInput,
)
from services.catalog.catalogs import ExtensionEntry, OverlayEntry, find_extension, find_overlay
from services.catalog.versions import Version
from services.schematic.model import Schematic
from services.shared.errors import InvalidArgument

# The HTTP handler adds this in front of every enhancement error (factory §2.6 step 5).
ENHANCE_ERROR_PREFIX: Final = "error enhancing profile from schematic: "


@dataclass(frozen=True)
class FactorySettings:
    """Deployment facts that shape a profile (factory §13)."""

    secureboot_enabled: bool = False
    enterprise: bool = False
    external_url: str = ""  # `http.externalURL`, named in the schematic extension's author
    installer_image: str = "siderolabs/installer"  # base installer below 1.10
    installer_base_image: str = "siderolabs/installer-base"  # from 1.10 (`SupportsUnifiedInstaller`)

    @property
    def product_name(self) -> str:
        return "Talos Enterprise" if self.enterprise else "Talos"

    @property
    def schematic_author(self) -> str:
        flavor = "Image Factory Enterprise" if self.enterprise else "Image Factory"
        return f"{flavor} ({self.external_url})"


def required_overlay(
    profile: Profile, schematic: Schematic, version: Version, overlays: Sequence[OverlayEntry]
) -> OverlayEntry | None:
    """The overlay catalog entry whose image (and `profiles/<name>.yaml`) `enhance` will need."""
    name = schematic.overlay.name
    if not name or not profile.output.kind.takes_extensions:
        return None
    _check_overlay_gate(schematic, version)
    return find_overlay(overlays, name, version)


def enhance(
    profile: Profile,
    schematic: Schematic,
    version: Version,
    *,
    schematic_id: str,
    settings: FactorySettings,
    extensions: Sequence[ExtensionEntry] = (),
    overlays: Sequence[OverlayEntry] = (),
    overlay_profile: Mapping[str, Any] | None = None,
) -> Profile:
    """Factory §4 steps 1-7, in order; errors are `InvalidArgument` (HTTP 400 with `ENHANCE_ERROR_PREFIX`)."""
    kind = profile.output.kind
    custom = schematic.customization
    p = profile

    # 1. Embedded machine configuration.
    if kind.takes_extensions and custom.embedded_machine_configuration:
        if not quirks.supports_embedded_config(version):
            raise InvalidArgument(f"embedding configuration is not supported for Talos version {version.tag}")
        p = _customize(p, embedded_machine_configuration=custom.embedded_machine_configuration)

    # 2. SecureBoot.
    if p.secureboot:
        p = _apply_secureboot(p, schematic, settings)

    # 3. Overlay gate (every kind).
    _check_overlay_gate(schematic, version)

    # 4. Base installer: `installer-base` from 1.10, `installer` before; the caller pins the digest.
    if kind is OutputKind.INSTALLER:
        unified = quirks.supports_unified_installer(version)
        image = settings.installer_base_image if unified else settings.installer_image
        p = _with_input(p, base_installer=BaseInstaller(image=image, tag=version.tag))

    # 5. Official extensions in schematic order, then the schematic extension, then the overlay.
    if kind.takes_extensions:
        found = [find_extension(extensions, name, version) for name in custom.system_extensions.official_extensions]
        schematic_ext = SchematicExtension(
            schematic_id=schematic_id,
            with_extra_info=quirks.supports_schematic_extra_info(version),
            author=settings.schematic_author,
        )
        p = _with_input(
            p,
            system_extensions=tuple(ExtensionInput(e.name, e.ref, e.digest) for e in found),
            schematic_extension=schematic_ext,
        )
        if schematic.overlay.name:
            p = _apply_overlay(p, schematic, version, overlays, overlay_profile)

    # 6. Kernel args, META, bootloader, sector size per kind.
    p = _apply_customization(p, schematic, version)

    # 7. Version and product name.
    return replace(p, version=version, name=settings.product_name)


def _check_overlay_gate(schematic: Schematic, version: Version) -> None:
    if schematic.overlay.name and not quirks.supports_overlay(version):
        raise InvalidArgument(f"overlay is not supported for Talos version {version.tag}")


def _apply_secureboot(p: Profile, schematic: Schematic, settings: FactorySettings) -> Profile:
    if not settings.secureboot_enabled:
        raise InvalidArgument("secure boot is disabled")
    sb = schematic.customization.secureboot
    p = _with_input(p, secureboot=SecureBootInput(include_well_known_certs=sb.include_well_known_certificates))
    if not sb.enroll_keys:
        return p
    # Parsed for every SecureBoot kind (a bad value fails them all); applied to iso and image only.
    keys = EnrollKeys.parse(sb.enroll_keys)
    output = p.output
    if output.kind is OutputKind.ISO:
        output = replace(output, iso_options=replace(output.iso_options or ISOOptions(), sd_boot_enroll_keys=keys))
    elif output.kind is OutputKind.IMAGE and output.image_options is not None:
        output = replace(output, image_options=replace(output.image_options, sd_boot_enroll_keys=keys))
    return replace(p, output=output)


def _apply_overlay(
    p: Profile,
    schematic: Schematic,
    version: Version,
    overlays: Sequence[OverlayEntry],
    overlay_profile: Mapping[str, Any] | None,
) -> Profile:
    entry = find_overlay(overlays, schematic.overlay.name, version)
    if overlay_profile is None:
        raise ValueError(f"overlay profile {schematic.overlay.name!r} was not provided; see required_overlay()")
    p = merge_overlay_profile(p, overlay_profile)
    overlay = OverlayInput(
        name=schematic.overlay.name,
        image=entry.image,
        ref=entry.ref,
        digest=entry.digest,
        options=schematic.overlay.options,
    )
    return replace(p, overlay=overlay)


def _apply_customization(p: Profile, schematic: Schematic, version: Version) -> Profile:
    custom = schematic.customization
    kind = p.output.kind
    if kind in (OutputKind.KERNEL, OutputKind.INITRAMFS):
        return p
    if kind in (OutputKind.INSTALLER, OutputKind.UKI):
        # Only a UKI-based installer carries kernel args; never META (factory §4 step 6).
        if p.secureboot or quirks.supports_unified_installer(version):
            p = _customize(p, extra_kernel_args=p.customization.extra_kernel_args + custom.extra_kernel_args)
        return p
    p = _customize(
        p,
        extra_kernel_args=p.customization.extra_kernel_args + custom.extra_kernel_args,
        meta_contents=p.customization.meta_contents + custom.meta,
    )
    output = p.output
    bootloader = Bootloader(custom.bootloader.value)
    if kind is OutputKind.ISO and bootloader is not Bootloader.NONE:
        output = replace(output, iso_options=replace(output.iso_options or ISOOptions(), bootloader=bootloader))
    elif kind is OutputKind.IMAGE and output.image_options is not None:
        options: ImageOptions = output.image_options
        if bootloader is not Bootloader.NONE:
            options = replace(options, bootloader=bootloader)
        if custom.disk_image.sector_size:
            options = replace(options, disk_sector_size=custom.disk_image.sector_size)
        output = replace(output, image_options=options)
    return replace(p, output=output)


def _customize(p: Profile, **changes: Any) -> Profile:
    customization: Customization = replace(p.customization, **changes)
    return replace(p, customization=customization)


def _with_input(p: Profile, **changes: Any) -> Profile:
    new_input: Input = replace(p.input, **changes)
    return replace(p, input=new_input)


def fill_output_defaults(profile: Profile) -> Profile:
    """Talos `Output.FillDefaults` (imager §2.2 step 4) for an enhanced profile, before building.

    Image: bootloader chosen by `quirks.default_bootloader`; `diskSize += bootSize - 1000 MiB`, and
    for dual-boot `+= 1 MiB + bootSize` (applied to every size, as upstream). ISO from 1.12:
    `isoOptions` allocated and its bootloader chosen. Take `asset_key` of the profile *before* this
    step, as the reference hashes before the imager fills defaults.
    """
    version = profile.version
    if version is None:
        raise ValueError("profile has no Talos version; run enhance() first")
    output = profile.output

    def choose(current: Bootloader) -> Bootloader:
        return quirks.default_bootloader(current, secureboot=profile.secureboot, arch=profile.arch, version=version)

    if output.kind is OutputKind.IMAGE and output.image_options is not None:
        opts = output.image_options
        bootloader = choose(opts.bootloader)
        boot = quirks.boot_partition_size(version)
        size = opts.disk_size + boot - 1000 * quirks.MIB
        if bootloader is Bootloader.DUAL_BOOT:
            size += quirks.MIB + boot
        output = replace(output, image_options=replace(opts, bootloader=bootloader, disk_size=size))
    elif output.kind is OutputKind.ISO and quirks.iso_supports_setting_bootloader(version):
        iso = output.iso_options or ISOOptions()
        output = replace(output, iso_options=replace(iso, bootloader=choose(iso.bootloader)))
    return replace(profile, output=output)
