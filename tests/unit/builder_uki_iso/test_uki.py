"""UKI sections, order and contents (imager spec §6.1) on a synthetic stub, read back with our reader and pefile."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from services.builder.assets.uki import (
    UkiOptions,
    UkiProfile,
    build_uki,
    kernel_uname,
    os_release,
    stub_version,
    talos_profiles,
    uki_sections,
)
from services.builder.steps.pe import read_pe
from services.shared.errors import Internal
from tests.unit.builder_uki_iso.helpers import (
    StubSection,
    bzimage_header,
    default_stub,
    make_stub,
    sections_of,
)

EPOCH = 1559424892
CMDLINE = "talos.platform=metal console=ttyS0 talos.environment=INSTALLER_META_BASE64=MHhhPXsiYWRkcmVzc2VzIjpbXX0="


@pytest.fixture
def options(tmp_path: Path) -> UkiOptions:
    (tmp_path / "stub.efi").write_bytes(default_stub())
    (tmp_path / "vmlinuz").write_bytes(bzimage_header() + b"K" * 5000)
    (tmp_path / "initramfs.xz").write_bytes(b"\xfd7zXZ\0" + b"I" * 3000)
    return UkiOptions(
        stub=tmp_path / "stub.efi",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initramfs.xz",
        cmdline=CMDLINE,
        os_release=os_release("Talos", "v1.12.0"),
        source_date_epoch=EPOCH,
    )


def test_os_release_template() -> None:
    assert os_release("Talos", "v1.12.0") == (
        'NAME="Talos"\nID=talos\nVERSION_ID=v1.12.0\nPRETTY_NAME="Talos (v1.12.0)"\n'
        'HOME_URL="https://www.talos.dev/"\nBUG_REPORT_URL="https://github.com/siderolabs/talos/issues"\n'
        'VENDOR_NAME="Sidero Labs"\nVENDOR_URL="https://www.siderolabs.com/"\n'
    )
    assert "\nID=talos_enterprise\n" in os_release("Talos Enterprise", "v1.12.0")


def test_talos_profiles_per_kind() -> None:
    assert [p.text() for p in talos_profiles("uki", "c")] == ["ID=main"]
    iso = talos_profiles("iso", "c")
    assert [p.text() for p in iso] == ["ID=main", "ID=reset\nTITLE=Reset system disk"]
    assert [p.cmdline for p in iso] == [None, "c talos.experimental.wipe=system"]
    for kind in ("image", "installer"):
        reset = talos_profiles(kind, "c")[1]
        assert reset.text() == "ID=reset-maintenance\nTITLE=Reset to maintenance mode"
        assert reset.cmdline == "c talos.experimental.wipe=system:EPHEMERAL,STATE"


def test_kernel_uname(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bzimage_header())
    assert kernel_uname(kernel) == "6.1.0-56-cloud-amd64"
    kernel.write_bytes(b"\0" * 0x1000)  # arm64 Image: no HdrS
    assert kernel_uname(kernel) is None
    broken = bytearray(bzimage_header())
    broken[0x1F1] = 1  # kernel_version offset beyond setup_sects * 512
    kernel.write_bytes(bytes(broken))
    assert kernel_uname(kernel) is None


def test_section_order_unsigned(options: UkiOptions, tmp_path: Path) -> None:
    names = [s.name for s in uki_sections(options, "6.1.0")]
    assert names == [".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    splash = tmp_path / "splash.bmp"
    with_all = dataclasses.replace(options, splash=splash, profiles=talos_profiles("iso", CMDLINE))
    names = [s.name for s in uki_sections(with_all, None)]
    assert names == [".osrel", ".cmdline", ".splash", ".linux", ".initrd", ".profile", ".profile", ".cmdline"]


async def test_built_uki_contents(options: UkiOptions, tmp_path: Path) -> None:
    out = tmp_path / "uki.efi"
    await build_uki(options, out)
    data = dict(sections_of(out))
    assert list(data) == [".text", ".data", ".sbat", ".sdmagic", ".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    assert data[".cmdline"] == CMDLINE.encode()  # no trailing newline
    assert data[".osrel"] == os_release("Talos", "v1.12.0").encode()
    assert data[".uname"] == b"6.1.0-56-cloud-amd64"
    assert data[".linux"] == options.kernel.read_bytes()
    assert data[".initrd"] == options.initrd.read_bytes()
    assert data[".sbat"] == b"sbat,1,SBAT Version\n"  # the stub's own, not appended
    assert read_pe(out).timestamp == EPOCH


async def test_built_uki_per_pefile(options: UkiOptions, tmp_path: Path, pefile: Any) -> None:
    out = tmp_path / "uki.efi"
    await build_uki(dataclasses.replace(options, profiles=talos_profiles("iso", CMDLINE), uname="6.9"), out)
    pe = pefile.PE(str(out))
    theirs = [(s.Name.rstrip(b"\0").decode(), s.get_data()[: s.Misc_VirtualSize]) for s in pe.sections]
    assert theirs == sections_of(out)
    assert pe.FILE_HEADER.TimeDateStamp == EPOCH
    assert dict(theirs[:-3])[".cmdline"] == CMDLINE.encode()
    assert dict(theirs)[".linux"] == options.kernel.read_bytes()


async def test_built_uki_with_profiles(options: UkiOptions, tmp_path: Path) -> None:
    out = tmp_path / "uki.efi"
    await build_uki(dataclasses.replace(options, profiles=talos_profiles("iso", CMDLINE), uname="6.9"), out)
    assert sections_of(out)[-5:] == [
        (".linux", options.kernel.read_bytes()),
        (".initrd", options.initrd.read_bytes()),
        (".profile", b"ID=main"),
        (".profile", b"ID=reset\nTITLE=Reset system disk"),
        (".cmdline", f"{CMDLINE} talos.experimental.wipe=system".encode()),
    ]


def _stub_with_magic(tmp_path: Path, magic: bytes | None) -> Path:
    sections = [StubSection(".text", 0x1000, b"\x90" * 64, 0x60000020)]
    if magic is not None:
        sections.append(StubSection(".sdmagic", 0x2000, magic))
    path = tmp_path / f"stub-{len(sections)}.efi"
    path.write_bytes(make_stub(sections))
    return path


async def test_profiles_need_a_profile_aware_stub(options: UkiOptions, tmp_path: Path) -> None:
    """systemd-stub < 257 ignores `.profile` and boots the last `.cmdline` (the wipe one)."""
    old = _stub_with_magic(tmp_path, b"#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####\0")
    assert stub_version(old) == 252
    assert stub_version(_stub_with_magic(tmp_path, None)) is None
    with_profiles = dataclasses.replace(options, stub=old, profiles=talos_profiles("iso", CMDLINE))
    with pytest.raises(Internal, match="systemd-stub 252 does not support UKI profiles"):
        await build_uki(with_profiles, tmp_path / "uki.efi")
    await build_uki(dataclasses.replace(with_profiles, require_profile_aware_stub=False), tmp_path / "uki.efi")
    await build_uki(dataclasses.replace(options, stub=old), tmp_path / "uki.efi")  # no profiles: fine


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cmdline": "a\nb"}, "cmdline must be one line"),
        ({"cmdline": "a\0b"}, "cmdline must be one line"),
        ({"profiles": (UkiProfile("reset"),)}, "first UKI profile must be ID=main"),
        ({"profiles": (UkiProfile("main"), UkiProfile("main"))}, "must be unique"),
        ({"profiles": (UkiProfile("main"), UkiProfile("x", cmdline="a\nb"))}, "profile x cmdline must be one line"),
    ],
)
def test_bad_options(options: UkiOptions, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(options, **changes)
