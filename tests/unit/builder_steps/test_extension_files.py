"""Microcode and firmware leave the extension (imager spec §4.4); the modules tree copy (§4.5 step 4)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.builder.assets.extension_files import copy_over, move_early_files


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("firmware", ["usr/lib/firmware", "lib/firmware"])
def test_microcode_and_firmware(tmp_path: Path, firmware: str) -> None:
    rootfs, tree = tmp_path / "rootfs", tmp_path / "tree"
    tree.mkdir()
    _write(rootfs / firmware / "intel-ucode/06-8e-09", b"I2")
    _write(rootfs / firmware / "intel-ucode/06-55-04", b"I1")
    _write(rootfs / firmware / "amd-ucode/microcode_amd_fam17h.bin", b"A1")
    _write(rootfs / firmware / "amd-ucode/microcode_amd.bin", b"A0")
    _write(rootfs / firmware / "amd-ucode/README", b"not microcode")
    _write(rootfs / firmware / "i915/tgl_dmc.bin", b"gpu", 0o666)
    (rootfs / firmware / "alias.bin").symlink_to("i915/tgl_dmc.bin")
    _write(rootfs / "usr/local/keep", b"stays")

    move_early_files(rootfs, tree, firmware)

    microcode = tree / "kernel/x86/microcode"
    assert (microcode / "GenuineIntel.bin").read_bytes() == b"I1I2"  # sorted glob, appended
    assert (microcode / "AuthenticAMD.bin").read_bytes() == b"A0A1"
    assert _mode(microcode / "GenuineIntel.bin") == 0o644
    assert {_mode(p) for p in (tree / "kernel", tree / "kernel/x86", microcode)} == {0o755}
    moved = tree / firmware
    assert (moved / "amd-ucode/README").read_bytes() == b"not microcode"
    assert (moved / "i915/tgl_dmc.bin").read_bytes() == b"gpu"
    assert _mode(moved / "i915/tgl_dmc.bin") == 0o644  # 0666 minus the imager's 022 umask
    assert not (moved / "alias.bin").is_symlink() and (moved / "alias.bin").read_bytes() == b"gpu"
    assert sorted(p.name for p in (moved / "intel-ucode").iterdir()) == []  # emptied, still moved
    assert not (rootfs / firmware).exists() and (rootfs / firmware).parent.is_dir()
    assert (rootfs / "usr/local/keep").read_bytes() == b"stays"


def test_microcode_appends_across_extensions(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for n, data in ((0, b"first"), (1, b"second")):
        _write(tmp_path / f"{n}/usr/lib/firmware/intel-ucode/x", data)
        move_early_files(tmp_path / str(n), tree, "usr/lib/firmware")
    assert (tree / "kernel/x86/microcode/GenuineIntel.bin").read_bytes() == b"firstsecond"
    assert not (tree / "kernel/x86/microcode/AuthenticAMD.bin").exists()


def test_nothing_to_move(tmp_path: Path) -> None:
    (tmp_path / "rootfs/usr/local").mkdir(parents=True)
    (tmp_path / "tree").mkdir()
    move_early_files(tmp_path / "rootfs", tmp_path / "tree", "usr/lib/firmware")
    assert list((tmp_path / "tree").iterdir()) == []


def test_copy_over_overwrites_and_truncates(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "extras/new.ko", b"new", 0o600)
    _write(src / "modules.order", b"short")
    _write(dst / "modules.order", b"a much longer original", 0o640)
    copy_over(src, dst, move=False)
    assert (dst / "extras/new.ko").read_bytes() == b"new" and _mode(dst / "extras/new.ko") == 0o600
    assert (dst / "modules.order").read_bytes() == b"short"
    assert _mode(dst / "modules.order") == 0o640  # an existing file keeps its mode, as with Go's OpenFile
    assert (src / "extras/new.ko").exists()
