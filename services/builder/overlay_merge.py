"""Overlay profile merge (factory spec §4.1 `MergeOverlayProfile`, imager spec §2.2 merge rules).

Input: our profile and the overlay image's `profiles/<overlay name>.yaml`, decoded by the caller into
plain data (e.g. `yaml.safe_load`). Exact semantics:

1. Ignored (the reference zeroes them before merging): `input`, `arch`, `platform`, `overlay`,
   `version`, `secureboot`, `output.kind`, `output.outFormat`, and inside `output.imageOptions`:
   `diskFormat`, `diskFormatOptions`, `diskSize`. Also ignored: `name` (enhancement step 7 sets it
   afterwards anyway), `baseProfileName` (no built-in overlay uses it; the factory never resolves one),
   and unknown keys (go-yaml's non-strict decoding).
2. Talos `merge.Merge(profile, overlay)` on what is left, "non-zero right side wins":
   * `customization.extraKernelArgs`, `customization.metaContents`: **concatenated**, profile first.
   * `customization.embeddedMachineConfiguration`: replaced when non-empty.
   * `output.imageOptions` / `output.isoOptions`: a mapping present in the overlay allocates the options
     when the profile has none (so an installer gains `imageOptions`, e.g. `bootloader: grub`); inside,
     `diskSectorSize` (≠0), `bootloader` (≠`none`) and `sdBootEnrollKeys` (≠`if-safe`) replace.
3. Anything malformed is an `Internal` error: the overlay image, not the user, is at fault (500).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from services.builder.enums import Bootloader, EnrollKeys
from services.builder.profile import ImageOptions, ISOOptions, Profile
from services.schematic.model import MetaValue
from services.shared.errors import Internal


def merge_overlay_profile(profile: Profile, overlay: Mapping[str, Any] | None) -> Profile:
    doc = _mapping(overlay, "profile")
    custom = _mapping(doc.get("customization"), "customization")
    output = _mapping(doc.get("output"), "output")

    customization = profile.customization
    args = tuple(_string(a, "customization.extraKernelArgs") for a in _list(custom, "extraKernelArgs"))
    meta = tuple(_meta(m) for m in _list(custom, "metaContents"))
    embedded = _string(custom.get("embeddedMachineConfiguration", ""), "customization.embeddedMachineConfiguration")
    customization = replace(
        customization,
        extra_kernel_args=customization.extra_kernel_args + args,
        meta_contents=customization.meta_contents + meta,
        embedded_machine_configuration=embedded or customization.embedded_machine_configuration,
    )

    out = profile.output
    if (image := output.get("imageOptions")) is not None:
        image = _mapping(image, "output.imageOptions")
        options = out.image_options or ImageOptions()
        if sector := _int(image.get("diskSectorSize", 0), "output.imageOptions.diskSectorSize"):
            options = replace(options, disk_sector_size=sector)
        if (bootloader := _bootloader(image, "output.imageOptions")) is not Bootloader.NONE:
            options = replace(options, bootloader=bootloader)
        if (keys := _enroll_keys(image, "output.imageOptions")) is not EnrollKeys.IF_SAFE:
            options = replace(options, sd_boot_enroll_keys=keys)
        out = replace(out, image_options=options)
    if (iso := output.get("isoOptions")) is not None:
        iso = _mapping(iso, "output.isoOptions")
        iso_options = out.iso_options or ISOOptions()
        if (bootloader := _bootloader(iso, "output.isoOptions")) is not Bootloader.NONE:
            iso_options = replace(iso_options, bootloader=bootloader)
        if (keys := _enroll_keys(iso, "output.isoOptions")) is not EnrollKeys.IF_SAFE:
            iso_options = replace(iso_options, sd_boot_enroll_keys=keys)
        out = replace(out, iso_options=iso_options)
    return replace(profile, customization=customization, output=out)


def _fail(what: str, value: object) -> Internal:
    return Internal(f"invalid overlay profile: {what}: unexpected {type(value).__name__} {value!r}")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(what, value)
    return value


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"customization.{key}", value)
    return value


def _string(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(what, value)
    return value


def _int(value: object, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(what, value)
    return value


def _meta(item: object) -> MetaValue:
    entry = _mapping(item, "customization.metaContents[]")
    key = _int(entry.get("key", 0), "customization.metaContents[].key")
    if key > 0xFF:
        raise _fail("customization.metaContents[].key", key)
    return MetaValue(key=key, value=_string(entry.get("value", ""), "customization.metaContents[].value"))


def _bootloader(doc: Mapping[str, Any], where: str) -> Bootloader:
    text = _string(doc.get("bootloader"), f"{where}.bootloader")
    try:
        return Bootloader(text) if text else Bootloader.NONE
    except ValueError:
        raise _fail(f"{where}.bootloader", text) from None


def _enroll_keys(doc: Mapping[str, Any], where: str) -> EnrollKeys:
    text = _string(doc.get("sdBootEnrollKeys"), f"{where}.sdBootEnrollKeys")
    try:
        return EnrollKeys(text) if text else EnrollKeys.IF_SAFE
    except ValueError:
        raise _fail(f"{where}.sdBootEnrollKeys", text) from None
