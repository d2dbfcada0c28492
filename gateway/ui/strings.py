"""Every user-visible string of the web UI, per locale (factory spec §12 "Language").

Templates and handlers look strings up by key through a `Translator`; nothing user-facing is written
inline elsewhere. A locale is one more dict with the same keys; `LOCALES` lists what can be chosen and
`pick_locale` chooses. A key missing from a locale falls back to English, so a partial translation
still renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

DEFAULT_LOCALE: Final = "en"

EN: Final[Mapping[str, str]] = MappingProxyType(
    {
        "app.title": "Talos Linux Image Factory",
        "app.tagline": "Build boot media and installer images for Talos Linux with your extensions and settings.",
        "app.skip": "Skip to the wizard",
        "app.noscript": "JavaScript is off: every step still works, and the links on the last page are plain links.",
        "app.footer": "Image Factory {version}",
        "app.progress": "Step {current} of {total}",
        "nav.back": "Back",
        "nav.next": "Next",
        "nav.start_over": "Start over",
        # step 1
        "target.title": "Hardware type",
        "target.legend": "What will run Talos Linux?",
        "target.metal": "Bare-metal machine",
        "target.metal.help": "A physical server or a virtual machine you boot from an ISO, a disk image or PXE.",
        "target.cloud": "Cloud server",
        "target.cloud.help": "A virtual machine of a cloud provider, from the provider's disk image format.",
        "target.sbc": "Single board computer",
        "target.sbc.help": "A Raspberry Pi or another ARM board, from an SD card / eMMC image.",
        # step 2
        "version.title": "Talos Linux version",
        "version.label": "Version",
        "version.help": "Newest first. The latest stable release is preselected.",
        "version.group.prerelease": "{minor} pre-releases",
        "version.latest": "{version} (latest stable)",
        "version.docs": "Talos Linux {minor} documentation: what's new, support matrix, installation",
        "version.none": "No Talos version is available for this hardware type right now.",
        # step 3
        "cloud.title": "Cloud platform",
        "cloud.legend": "Which cloud will run it?",
        "sbc.title": "Single board computer",
        "sbc.legend": "Which board?",
        # step 4
        "arch.title": "Machine architecture",
        "arch.legend": "CPU architecture",
        "arch.amd64": "amd64 (x86-64: Intel, AMD)",
        "arch.arm64": "arm64 (AArch64: Ampere, Graviton, Apple, Raspberry Pi…)",
        "secureboot.label": "SecureBoot",
        "secureboot.help": (
            "Boot media signed with this factory's SecureBoot key; enroll its keys in the firmware first."
        ),
        # step 5
        "extensions.title": "System extensions",
        "extensions.search": "Search extensions",
        "extensions.search.help": "Filters by name or description as you type. Selected extensions always stay listed.",
        "extensions.filter": "Filter",
        "extensions.legend": "Extensions to include",
        "extensions.none": "No extension matches.",
        "extensions.selected": "{count} selected",
        # step 6
        "customization.title": "Customization",
        "custom.cmdline": "Extra kernel command line arguments",
        "custom.cmdline.help": "Separated by spaces. Prefix an argument with '-' to remove a default, e.g. -console.",
        "custom.embedded": "Embedded machine configuration",
        "custom.embedded.help": "A Talos machine configuration document baked into the image (YAML).",
        "custom.overlay": "Overlay options",
        "custom.overlay.help": "YAML options passed to the board's overlay installer.",
        "custom.bootloader": "Bootloader",
        "custom.bootloader.auto": "Automatic (the Talos default)",
        "custom.bootloader.sd-boot": "systemd-boot (UEFI only)",
        "custom.bootloader.grub": "GRUB",
        "custom.bootloader.dual-boot": "Both (GRUB for BIOS, systemd-boot for UEFI)",
        # step 7
        "final.title": "Your schematic is ready",
        "final.intro": (
            "The schematic ID names exactly this set of extensions and settings. Use it for every download and"
            " for upgrades."
        ),
        "final.summary": "Your choices",
        "final.target": "Target",
        "final.version": "Talos version",
        "final.arch": "Architecture",
        "final.extensions": "Extensions",
        "final.extensions.none": "none",
        "final.id": "Schematic ID",
        "final.yaml": "Schematic",
        "final.yaml.help": "Post this YAML to /schematics to get the same ID.",
        "final.copy": "Copy",
        "final.copied": "Copied",
        "final.downloads": "Boot media",
        "final.downloads.help": (
            "An asset is built on first download and served from the cache after that; the first time may take"
            " a minute."
        ),
        "final.pxe": "PXE boot script (iPXE chain URL)",
        "final.installer": "Installer image for upgrades and installs",
        "final.installer.help": "Use it as machine.install.image in the machine config, or with talosctl upgrade.",
        "final.talosctl": "talosctl for Talos {version}",
        "final.commands": "Try it locally",
        "final.docs": "Documentation",
        "final.docs.version": "Talos Linux {minor} documentation",
        "final.secureboot_keys": "SecureBoot signing certificate",
        "final.progress.starting": "Preparing {name}…",
        "final.progress.ready": "{name} is ready; the download starts.",
        "final.progress.failed": "Building {name} failed: {message}",
        # asset labels
        "asset.iso": "ISO",
        "asset.disk": "Disk image",
        "asset.disk.qcow2": "Disk image (qcow2)",
        "asset.sbc": "SD card / eMMC image",
        "asset.kernel": "Kernel",
        "asset.initramfs": "Initramfs",
        "asset.cmdline": "Kernel command line",
        "asset.uki": "Unified kernel image (UKI)",
        # errors (one line each; 400 bodies)
        "error.target": "unknown hardware type {value!r}",
        "error.version": "version {value} is not available",
        "error.platform": "platform {value!r} is not offered for Talos {version}",
        "error.board": "board {value!r} is not offered for Talos {version}",
        "error.arch": "architecture {value!r} is not offered for this platform",
        "error.secureboot": "SecureBoot is not offered for this platform and version",
        "error.extension": "extension {value!r} is not in the catalog of Talos {version}",
        "error.bootloader": "unknown bootloader {value!r}",
        "error.embedded": "an embedded machine configuration needs Talos 1.12 or later",
        "error.overlay_options": "overlay options must be a YAML mapping",
        "error.overlay_yaml": "overlay options are not valid YAML: {message}",
        "error.schematic_id": "invalid schematic ID",
        "error.schematic_missing": "schematic not found",
        "error.asset_path": "invalid asset path",
        "error.lang": "missing lang param",
    }
)

LOCALES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({"en": EN})


@dataclass(frozen=True)
class Translator:
    """`t("key", name=value)`: the locale's text (English if missing), formatted with the arguments."""

    locale: str = DEFAULT_LOCALE

    def __call__(self, key: str, **values: object) -> str:
        table = LOCALES.get(self.locale, EN)
        text = table.get(key) or EN[key]
        return text.format(**values) if values else text


def pick_locale(cookie: str | None, accept_language: str | None) -> str:
    """The `lang` cookie if it names a locale, else the best `Accept-Language` match, else English."""
    if cookie is not None and cookie in LOCALES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LOCALES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LOCALE
