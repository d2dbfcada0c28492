"""The final page's links: every download that fits the chosen target (factory spec §12 `wizardFinal`).

Pure. Asset paths follow the path grammar of spec §3 with the platform metadata of §3.1, so every
link here is one that `/image/…` parses and the builder builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlsplit

from gateway.ui.state import Target
from gateway.ui.wizard import Choice
from services.builder.enums import Arch, Platform
from services.builder.platforms import SBC_DISK_IMAGE_PATH, BootMethod
from services.catalog.versions import Version, parse

# `<platform>-installer` images exist from Talos 1.10 (unified installer, quirks.supports_unified_installer).
PLATFORM_INSTALLER_MIN_VERSION: Final = Version(1, 10, 0)
TALOSCTL_MIN_VERSION: Final = parse("1.11.0-alpha.3")  # talosctl-all images (spec §2.7)
CLUSTER_CREATE_MIN_VERSION: Final = parse("1.12.0-alpha.2")  # `talosctl cluster create qemu --schematic-id`
BOOTER_IMAGE: Final = "ghcr.io/siderolabs/booter:v0.3.0"
DOCS_BASE: Final = "https://docs.siderolabs.com/talos"


@dataclass(frozen=True)
class Download:
    label: str  # a strings key
    path: str  # the asset path under /image/<id>/<version>/
    url: str


@dataclass(frozen=True)
class FinalLinks:
    downloads: tuple[Download, ...]
    pxe_url: str | None
    installer: str
    talosctl: tuple[tuple[str, str], ...] = ()  # (file name, URL)
    commands: tuple[str, ...] = ()
    docs: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (strings key, URL)


def image_url(base: str, schematic_id: str, version: Version, path: str) -> str:
    return f"{base.rstrip('/')}/image/{schematic_id}/{version.tag}/{quote(path)}"


def asset_paths(choice: Choice) -> list[tuple[str, str]]:
    """(label key, asset path) of every download that fits the target, in display order."""
    if choice.target == Target.SBC:
        return [("asset.sbc", SBC_DISK_IMAGE_PATH)]
    info = choice.platform
    name = f"{info.platform.value}-{choice.arch.value}" + ("-secureboot" if choice.secureboot else "")
    out: list[tuple[str, str]] = []
    if BootMethod.ISO in info.boot_methods:
        out.append(("asset.iso", f"{name}.iso"))
    if BootMethod.DISK_IMAGE in info.boot_methods and info.disk_image_suffix:
        out.append(("asset.disk", f"{name}.{info.disk_image_suffix}"))
        if info.platform is Platform.METAL:
            out.append(("asset.disk.qcow2", f"{name}.qcow2"))
    if info.platform is Platform.METAL:
        arch = choice.arch.value
        if choice.secureboot:
            out.append(("asset.uki", f"metal-{arch}-secureboot-uki.efi"))
        else:
            out += [
                ("asset.kernel", f"kernel-{arch}"),
                ("asset.cmdline", f"cmdline-metal-{arch}"),
                ("asset.initramfs", f"initramfs-{arch}.xz"),
                ("asset.uki", f"metal-{arch}-uki.efi"),
            ]
    return out


def pxe_url(choice: Choice, pxe_base: str, schematic_id: str) -> str | None:
    if choice.target == Target.SBC or BootMethod.PXE not in choice.platform.boot_methods:
        return None
    name = f"{choice.platform.platform.value}-{choice.arch.value}" + ("-secureboot" if choice.secureboot else "")
    return f"{pxe_base.rstrip('/')}/pxe/{schematic_id}/{choice.version.tag}/{name}"


def installer_reference(choice: Choice, external_url: str, schematic_id: str) -> str:
    """Spec §12: `<host>/<platform>-installer[-secureboot]/<id>:v<ver>` from 1.10, `installer` before."""
    host = urlsplit(external_url).netloc
    suffix = "-secureboot" if choice.secureboot else ""
    platform = Platform.METAL if choice.target == Target.SBC else choice.platform.platform
    image = f"{platform.value}-installer" if choice.version >= PLATFORM_INSTALLER_MIN_VERSION else "installer"
    return f"{host}/{image}{suffix}/{schematic_id}:{choice.version.tag}"


def talosctl_links(external_url: str, version: Version, files: Sequence[str]) -> tuple[tuple[str, str], ...]:
    if version < TALOSCTL_MIN_VERSION:
        return ()
    base = external_url.rstrip("/")
    return tuple((name, f"{base}/talosctl/{version.tag}/{quote(name)}") for name in sorted(files))


def commands(choice: Choice, schematic_id: str) -> tuple[str, ...]:
    tag = choice.version.tag
    out = []
    if choice.target == Target.METAL and choice.arch is Arch.AMD64 and choice.version >= CLUSTER_CREATE_MIN_VERSION:
        out.append(f"talosctl cluster create qemu --schematic-id={schematic_id} --talos-version={tag}")
    if choice.target == Target.METAL:
        out.append(f"docker run --rm --network host {BOOTER_IMAGE} --talos-version={tag} --schematic-id={schematic_id}")
    return tuple(out)


def doc_links(choice: Choice) -> tuple[tuple[str, str], ...]:
    return (("final.docs.version", docs_url(choice.version)),)


def docs_url(version: Version) -> str:
    """The documentation of a Talos minor line."""
    return f"{DOCS_BASE}/v{version.major}.{version.minor}/"


def final_links(
    choice: Choice,
    schematic_id: str,
    *,
    external_url: str,
    pxe_base: str,
    talosctl_files: Sequence[str] = (),
) -> FinalLinks:
    return FinalLinks(
        downloads=tuple(
            Download(label, path, image_url(external_url, schematic_id, choice.version, path))
            for label, path in asset_paths(choice)
        ),
        pxe_url=pxe_url(choice, pxe_base or external_url, schematic_id),
        installer=installer_reference(choice, external_url, schematic_id),
        talosctl=talosctl_links(external_url, choice.version, talosctl_files),
        commands=commands(choice, schematic_id),
        docs=doc_links(choice),
    )
