"""The final page's links for each kind of target (factory spec §12 `wizardFinal`, §3.1)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.ui.links import asset_paths, commands, final_links, installer_reference, pxe_url, talosctl_links
from gateway.ui.state import Target
from gateway.ui.wizard import Choice
from services.builder.enums import Arch, Platform
from services.builder.platforms import BOARDS, platform_info
from services.builder.profile import parse_profile_path
from services.catalog.versions import Version, parse

ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
EXTERNAL = "https://factory.example.com/"
PXE = "http://pxe.example.com/"


def choice(target: Target = Target.METAL, platform: Platform = Platform.METAL, **changes: object) -> Choice:
    info = platform_info(platform)
    assert info is not None
    base = Choice(
        target=target,
        version=parse("1.12.1"),
        platform=info,
        board=None,
        arch=Arch.AMD64,
        secureboot=False,
        extensions=(),
        kernel_args=(),
        embedded_config="",
        overlay_options=None,
        bootloader=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_bare_metal_gets_every_boot_asset() -> None:
    assert asset_paths(choice()) == [
        ("asset.iso", "metal-amd64.iso"),
        ("asset.disk", "metal-amd64.raw.zst"),
        ("asset.disk.qcow2", "metal-amd64.qcow2"),
        ("asset.kernel", "kernel-amd64"),
        ("asset.cmdline", "cmdline-metal-amd64"),
        ("asset.initramfs", "initramfs-amd64.xz"),
        ("asset.uki", "metal-amd64-uki.efi"),
    ]


def test_secureboot_metal_offers_only_signed_media() -> None:
    assert asset_paths(choice(arch=Arch.ARM64, secureboot=True)) == [
        ("asset.iso", "metal-arm64-secureboot.iso"),
        ("asset.disk", "metal-arm64-secureboot.raw.zst"),
        ("asset.disk.qcow2", "metal-arm64-secureboot.qcow2"),
        ("asset.uki", "metal-arm64-secureboot-uki.efi"),
    ]


@pytest.mark.parametrize(
    ("platform", "paths"),
    [
        (Platform.AWS, ["aws-amd64.raw.xz"]),
        (Platform.GCP, ["gcp-amd64.raw.tar.gz"]),
        (Platform.AZURE, ["azure-amd64.vhd.xz"]),
        (Platform.VMWARE, ["vmware-amd64.iso", "vmware-amd64.ova"]),
        (Platform.NOCLOUD, ["nocloud-amd64.iso", "nocloud-amd64.raw.xz"]),
        (Platform.EQUINIX_METAL, []),  # PXE only
        (Platform.VULTR, ["vultr-amd64.iso"]),
    ],
)
def test_cloud_platforms_get_their_boot_methods(platform: Platform, paths: list[str]) -> None:
    assert [p for _, p in asset_paths(choice(Target.CLOUD, platform))] == paths


def test_sbc_gets_the_arm64_disk_image() -> None:
    board = next(b for b in BOARDS if b.name == "rpi_generic")
    sbc = choice(Target.SBC, arch=Arch.ARM64, board=board)
    assert asset_paths(sbc) == [("asset.sbc", "metal-arm64.raw.xz")]
    assert pxe_url(sbc, PXE, ID) is None
    assert installer_reference(sbc, EXTERNAL, ID) == f"factory.example.com/metal-installer/{ID}:v1.12.1"


def test_every_offered_path_parses_as_a_profile() -> None:
    """The links point at assets the builder knows how to make (spec §3)."""
    for info in (p for p in (platform_info(x) for x in Platform) if p is not None):
        for arch in info.archs:
            for secure in (False, True) if info.secureboot else (False,):
                target = Target.METAL if info.platform is Platform.METAL else Target.CLOUD
                for _, path in asset_paths(choice(target, info.platform, arch=arch, secureboot=secure)):
                    parse_profile_path(path, Version(1, 12, 1))


def test_pxe_and_installer_references() -> None:
    assert (
        pxe_url(choice(secureboot=True), PXE, ID) == f"http://pxe.example.com/pxe/{ID}/v1.12.1/metal-amd64-secureboot"
    )
    assert pxe_url(choice(Target.CLOUD, Platform.AWS), PXE, ID) is None
    assert installer_reference(choice(), EXTERNAL, ID) == f"factory.example.com/metal-installer/{ID}:v1.12.1"
    secure_old = choice(secureboot=True, version=parse("1.9.6"))
    assert installer_reference(secure_old, EXTERNAL, ID) == f"factory.example.com/installer-secureboot/{ID}:v1.9.6"
    aws = choice(Target.CLOUD, Platform.AWS)
    assert installer_reference(aws, EXTERNAL, ID) == f"factory.example.com/aws-installer/{ID}:v1.12.1"


def test_talosctl_links_from_their_first_version() -> None:
    files = ["talosctl-linux-amd64", "talosctl-darwin-arm64"]
    assert talosctl_links(EXTERNAL, parse("1.12.1"), files) == (
        ("talosctl-darwin-arm64", "https://factory.example.com/talosctl/v1.12.1/talosctl-darwin-arm64"),
        ("talosctl-linux-amd64", "https://factory.example.com/talosctl/v1.12.1/talosctl-linux-amd64"),
    )
    assert talosctl_links(EXTERNAL, parse("1.11.0-alpha.2"), files) == ()
    assert talosctl_links(EXTERNAL, parse("1.11.0-alpha.3"), files) != ()


def test_commands_follow_the_version() -> None:
    assert commands(choice(), ID) == (
        f"talosctl cluster create qemu --schematic-id={ID} --talos-version=v1.12.1",
        f"docker run --rm --network host ghcr.io/siderolabs/booter:v0.3.0 --talos-version=v1.12.1 --schematic-id={ID}",
    )
    assert len(commands(choice(version=parse("1.11.5")), ID)) == 1
    assert commands(choice(Target.CLOUD, Platform.AWS), ID) == ()


def test_final_links_use_the_external_urls() -> None:
    out = final_links(choice(), ID, external_url=EXTERNAL, pxe_base=PXE, talosctl_files=["talosctl-linux-amd64"])
    assert out.downloads[0].url == f"https://factory.example.com/image/{ID}/v1.12.1/metal-amd64.iso"
    assert out.pxe_url == f"http://pxe.example.com/pxe/{ID}/v1.12.1/metal-amd64"
    assert out.docs == (("final.docs.version", "https://docs.siderolabs.com/talos/v1.12/"),)
    same = final_links(choice(), ID, external_url=EXTERNAL, pxe_base="")
    assert same.pxe_url == f"https://factory.example.com/pxe/{ID}/v1.12.1/metal-amd64"
