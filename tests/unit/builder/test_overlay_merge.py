"""Overlay profile merge (factory spec §4.1): what is ignored, what wins, what concatenates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml

from services.builder.enums import Bootloader, EnrollKeys, ImageFormat
from services.builder.overlay_merge import merge_overlay_profile
from services.builder.profile import Customization, ImageOptions, ISOOptions, Profile, parse_profile_path
from services.catalog.versions import Version
from services.schematic.model import MetaValue
from services.shared.errors import Internal

V = Version(1, 10, 0)
MIB = 1024 * 1024


def disk() -> Profile:
    return parse_profile_path("metal-arm64.raw.xz", V)


def test_ignored_fields() -> None:
    overlay: dict[str, Any] = yaml.safe_load(
        """
arch: amd64
platform: aws
secureboot: true
version: v9.9.9
name: Other
baseProfileName: metal
input: {kernel: {path: /x}}
overlay: {name: x}
output:
  kind: iso
  outFormat: .gz
  imageOptions: {diskSize: 1, diskFormat: qcow2, diskFormatOptions: "a=b"}
unknownKey: 1
"""
    )
    assert merge_overlay_profile(disk(), overlay) == disk()


def test_empty_and_null() -> None:
    assert merge_overlay_profile(disk(), None) == disk()
    assert merge_overlay_profile(disk(), {}) == disk()
    assert merge_overlay_profile(disk(), {"customization": None, "output": None}) == disk()


def test_non_zero_right_side_wins() -> None:
    overlay = {
        "customization": {"embeddedMachineConfiguration": "cfg"},
        "output": {
            "imageOptions": {"diskSectorSize": 4096, "bootloader": "grub", "sdBootEnrollKeys": "force"},
            "isoOptions": {"bootloader": "sd-boot", "sdBootEnrollKeys": "manual"},
        },
    }
    merged = merge_overlay_profile(disk(), overlay)
    assert merged.customization.embedded_machine_configuration == "cfg"
    assert merged.output.image_options == ImageOptions(
        disk_size=1246 * MIB,
        disk_format=ImageFormat.RAW,
        disk_sector_size=4096,
        bootloader=Bootloader.GRUB,
        sd_boot_enroll_keys=EnrollKeys.FORCE,
    )
    assert merged.output.iso_options == ISOOptions(sd_boot_enroll_keys=EnrollKeys.MANUAL, bootloader=Bootloader.SD_BOOT)


def test_zero_right_side_keeps_left() -> None:
    options = disk().output.image_options
    assert options is not None
    options = replace(options, bootloader=Bootloader.SD_BOOT, disk_sector_size=512)
    base = replace(
        disk(),
        customization=Customization(embedded_machine_configuration="mine"),
        output=replace(disk().output, image_options=options),
    )
    overlay = {
        "customization": {"embeddedMachineConfiguration": ""},
        "output": {"imageOptions": {"bootloader": "none", "diskSectorSize": 0, "sdBootEnrollKeys": "if-safe"}},
    }
    assert merge_overlay_profile(base, overlay) == base


def test_lists_concatenate_profile_first() -> None:
    base = replace(
        disk(),
        customization=Customization(extra_kernel_args=("a",), meta_contents=(MetaValue(1, "x"),)),
    )
    overlay = {"customization": {"extraKernelArgs": ["b", "c"], "metaContents": [{"key": 12, "value": "y"}]}}
    merged = merge_overlay_profile(base, overlay)
    assert merged.customization.extra_kernel_args == ("a", "b", "c")
    assert merged.customization.meta_contents == (MetaValue(1, "x"), MetaValue(12, "y"))


def test_allocates_options_for_kinds_without_them() -> None:
    installer = parse_profile_path("installer-arm64.tar", V)
    merged = merge_overlay_profile(installer, {"output": {"imageOptions": {"bootloader": "grub"}, "isoOptions": {}}})
    assert merged.output.image_options == ImageOptions(bootloader=Bootloader.GRUB)
    assert merged.output.iso_options == ISOOptions()


@pytest.mark.parametrize(
    "overlay",
    [
        [],
        {"customization": []},
        {"customization": {"extraKernelArgs": "a b"}},
        {"customization": {"extraKernelArgs": [1]}},
        {"customization": {"metaContents": [{"key": 256, "value": "x"}]}},
        {"customization": {"metaContents": [{"key": True, "value": "x"}]}},
        {"customization": {"metaContents": [{"key": 1, "value": 2}]}},
        {"output": {"imageOptions": {"bootloader": "auto"}}},
        {"output": {"imageOptions": {"diskSectorSize": "4k"}}},
        {"output": {"isoOptions": {"sdBootEnrollKeys": "sometimes"}}},
        {"output": {"isoOptions": []}},
    ],
)
def test_malformed_overlay_profile_is_internal(overlay: Any) -> None:
    with pytest.raises(Internal, match="invalid overlay profile"):
        merge_overlay_profile(disk(), overlay)
