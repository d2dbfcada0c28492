"""ISO asset (imager spec §5.1-§5.4): which ISO, scratch trees, and the tool sequence with fake tools."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from services.builder.assets.iso import (
    GrubPayload,
    IsoKind,
    IsoOptions,
    SdBootPayload,
    build_iso,
    grub_tree,
    loader_conf,
    select_iso_kind,
    uefi_tree,
)
from services.builder.steps import fat, grub, xorriso
from services.builder.steps.xorriso import IsoIdentity
from tests.unit.builder_uki_iso.helpers import fake_tool, recorded

EPOCH = 1559424892
IDENTITY = IsoIdentity(EPOCH, "Talos-v1.12.0")


@pytest.mark.parametrize(
    ("secure_boot", "ge_1_12", "ge_1_10", "bootloader", "kind"),
    [
        (True, True, True, "dual-boot", IsoKind.UEFI),  # SecureBoot always wins
        (True, False, False, "grub", IsoKind.UEFI),
        (False, True, True, "dual-boot", IsoKind.HYBRID),
        (False, True, True, "sd-boot", IsoKind.UEFI),
        (False, True, True, "grub", IsoKind.GRUB),
        (False, False, True, "grub", IsoKind.HYBRID),  # 1.10/1.11: bootloader ignored
        (False, False, False, "sd-boot", IsoKind.GRUB),  # <1.10
    ],
)
def test_select_iso_kind(secure_boot: bool, ge_1_12: bool, ge_1_10: bool, bootloader: str, kind: IsoKind) -> None:
    chosen = select_iso_kind(
        secure_boot=secure_boot, iso_supports_bootloader=ge_1_12, use_sdboot_for_uefi=ge_1_10, bootloader=bootloader
    )
    assert chosen is kind


def test_select_iso_kind_refuses_unresolved_bootloader() -> None:
    with pytest.raises(ValueError, match="ISO bootloader must be one of"):
        select_iso_kind(secure_boot=False, iso_supports_bootloader=True, use_sdboot_for_uefi=True, bootloader="none")


def test_loader_conf() -> None:
    assert loader_conf("off") == "# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll off\n"
    assert loader_conf("if-safe").endswith("\nsecure-boot-enroll if-safe\n")


def test_trees(tmp_path: Path) -> None:
    sdboot = SdBootPayload(tmp_path / "sd.efi", tmp_path / "uki.efi", "v1.12.0", arch="arm64",
                           extra_files=(("EFI/keys/uki-signing-cert.der", tmp_path / "cert.der"),))  # fmt: skip
    assert uefi_tree(sdboot) == {
        "EFI/BOOT/BOOTAA64.EFI": tmp_path / "sd.efi",
        "EFI/Linux/Talos-v1.12.0.efi": tmp_path / "uki.efi",
        "loader/loader.conf": loader_conf("off").encode(),
        "loader/random-seed": bytes(32),
        "EFI/keys/uki-signing-cert.der": tmp_path / "cert.der",
    }
    payload = GrubPayload(tmp_path / "k", tmp_path / "i", "console=ttyS0", reset_option=False)
    assert grub_tree(payload) == {
        "boot/vmlinuz": tmp_path / "k",
        "boot/initramfs.xz": tmp_path / "i",
        "boot/grub/grub.cfg": grub.iso_grub_cfg("console=ttyS0", reset_option=False).encode(),
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "riscv64"}, "unsupported UEFI architecture"),
        ({"secure_boot_enroll": "always"}, "secure-boot-enroll must be one of"),
        ({"version": ""}, "invalid version"),
        ({"version": "../x"}, "invalid version"),
        ({"extra_files": (("../etc/passwd", Path("x")),)}, "under EFI/ or loader/"),
        ({"extra_files": (("boot/x", Path("x")),)}, "under EFI/ or loader/"),
    ],
)
def test_bad_sdboot_payload(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SdBootPayload(Path("sd.efi"), Path("uki.efi"), **{"version": "v1.12.0", **kwargs})


@pytest.mark.parametrize(
    ("kind", "with_grub", "with_sdboot", "message"),
    [
        (IsoKind.GRUB, False, False, "grub ISO needs GRUB payload"),
        (IsoKind.GRUB, True, True, "grub ISO takes no sd-boot payload"),
        (IsoKind.UEFI, True, True, "uefi ISO takes no GRUB payload"),
        (IsoKind.UEFI, False, False, "uefi ISO needs sd-boot payload"),
        (IsoKind.HYBRID, True, False, "hybrid ISO needs sd-boot payload"),
    ],
)
def test_bad_iso_options(kind: IsoKind, with_grub: bool, with_sdboot: bool, message: str) -> None:
    g = GrubPayload(Path("k"), Path("i"), "c") if with_grub else None
    s = SdBootPayload(Path("sd"), Path("uki"), "v1.12.0") if with_sdboot else None
    with pytest.raises(ValueError, match=message):
        IsoOptions(kind, IDENTITY, grub=g, sdboot=s)


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    make_output = 'for a; do case "$a" in --output=*) : > "${a#--output=}";; esac; done\n'
    fake_tool(bindir, "grub-mkrescue", log, make_output)
    for tool in ("xorrisofs", "mkfs.vfat", "mmd", "mcopy", "mattrib"):
        fake_tool(bindir, tool, log)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    for name, size in (("vmlinuz", 3000), ("initramfs.xz", 2000), ("sd.efi", 1000), ("uki.efi", 5000)):
        (tmp_path / name).write_bytes(b"x" * size)
    return tmp_path


def _options(kind: IsoKind, d: Path) -> IsoOptions:
    g = GrubPayload(d / "vmlinuz", d / "initramfs.xz", "console=ttyS0") if kind is not IsoKind.UEFI else None
    s = SdBootPayload(d / "sd.efi", d / "uki.efi", "v1.12.0") if kind is not IsoKind.GRUB else None
    return IsoOptions(kind, IDENTITY, grub=g, sdboot=s)


@pytest.mark.parametrize("kind", list(IsoKind))
async def test_build_iso_tool_sequence(kind: IsoKind, inputs: Path) -> None:
    work, out = inputs / "work", inputs / "out.iso"
    work.mkdir()
    await build_iso(_options(kind, inputs), out, work)
    scratch, image = work / "iso", work / "iso" / "efiboot.img"
    calls = recorded(inputs / "calls.log")
    assert {c[0] for c in calls} == {str(EPOCH)}
    tools = [c[1] for c in calls]
    efiboot = ["mkfs.vfat", "mmd", "mcopy", "mcopy", "mcopy", "mattrib"]
    if kind is IsoKind.GRUB:
        assert calls == [[str(EPOCH), *grub.mkrescue_grub_argv(scratch, out, IDENTITY)]]
    elif kind is IsoKind.UEFI:
        assert tools == [*efiboot, "xorrisofs"]
        assert calls[-1][1:] == xorriso.xorrisofs_uefi_argv(scratch, out, IDENTITY)
    else:
        assert tools == [*efiboot, "grub-mkrescue"]
        assert calls[-1][1:] == grub.mkrescue_hybrid_argv(scratch, out, IDENTITY)
    if kind is not IsoKind.GRUB:
        assert image.stat().st_size == fat.FAT32_MIN_SIZE
        assert calls[0][1:] == fat.mkfs_argv(fat.FatSpec("EFI", fat.FAT32_MIN_SIZE), image)
        seed = scratch / "loader" / "random-seed"
        assert seed.read_bytes() == bytes(32) and stat.S_IMODE(seed.stat().st_mode) == 0o444
    # every scratch entry (but the FAT image, made afterwards) carries SOURCE_DATE_EPOCH and a fixed mode
    for path in scratch.rglob("*"):
        if path != image:
            assert path.stat().st_mtime == EPOCH, path
            assert stat.S_IMODE(path.stat().st_mode) in ((0o755,) if path.is_dir() else (0o644, 0o444)), path
