"""grub-mkrescue step and the ISO grub.cfg (imager spec §5.2, §5.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.builder.steps.grub import grub_quote, iso_grub_cfg, mkrescue_grub_argv, mkrescue_hybrid_argv
from services.builder.steps.xorriso import IsoIdentity

IDENTITY = IsoIdentity(1559424892, "Talos-v1.12.0")
NATIVE = [
    "-volume_date", "all_file_dates", "=1559424892",
    "-volume_date", "uuid", "2019060121345200",
    "-volid", "TALOS_V1_12_0",
    "-volset-id", "Talos-v1.12.0",
]  # fmt: skip


def test_grub_quote() -> None:
    assert grub_quote('a\\b{c}d&e$f|g;h<i>j"k l=m') == 'a\\\\b\\{c\\}d\\&e\\$f\\|g\\;h\\<i\\>j\\"k l=m'
    assert grub_quote("talos.environment=INSTALLER_META_BASE64=MHhh") == "talos.environment=INSTALLER_META_BASE64=MHhh"


def test_grub_cfg_with_reset_entry() -> None:
    assert iso_grub_cfg("console=ttyS0 a=$x", reset_option=True) == (
        "set default=0\n"
        "set timeout=3\n"
        "\n"
        "insmod all_video\n"
        "\n"
        "terminal_input console\n"
        "terminal_output console\n"
        "\n"
        'menuentry "Talos ISO" {\n'
        "\tset gfxmode=auto\n"
        "\tset gfxpayload=text\n"
        "\tlinux /boot/vmlinuz console=ttyS0 a=\\$x\n"
        "\tinitrd /boot/initramfs.xz\n"
        "}\n"
        "\n"
        'menuentry "Reset Talos installation" {\n'
        "\tset gfxmode=auto\n"
        "\tset gfxpayload=text\n"
        "\tlinux /boot/vmlinuz console=ttyS0 a=\\$x talos.experimental.wipe=system\n"
        "\tinitrd /boot/initramfs.xz\n"
        "}\n"
    )


def test_grub_cfg_without_reset_entry_ends_with_blank_line() -> None:
    cfg = iso_grub_cfg("console=tty0", reset_option=False)
    assert cfg.endswith("\tinitrd /boot/initramfs.xz\n}\n\n")
    assert "Reset" not in cfg


def test_grub_cfg_refuses_multiline_cmdline() -> None:
    with pytest.raises(ValueError, match="one line"):
        iso_grub_cfg("a\nmenuentry x", reset_option=False)


def test_mkrescue_grub_argv() -> None:
    assert mkrescue_grub_argv(Path("/w/iso"), Path("/w/out.iso"), IDENTITY) == [
        "grub-mkrescue", "--compress=xz", "--output=/w/out.iso", "--verbose",
        "/w/iso",
        "-iso-level", "3",
        "--", *NATIVE,
    ]  # fmt: skip


def test_mkrescue_hybrid_argv() -> None:
    assert mkrescue_hybrid_argv(Path("/w/iso"), Path("/w/out.iso"), IDENTITY) == [
        "grub-mkrescue", "--compress=xz", "--output=/w/out.iso", "--verbose",
        "--directory=/usr/lib/grub/i386-pc",
        "-m", "efiboot.img", "-iso-level", "3",
        "/w/iso",
        "-eltorito-alt-boot",
        "-e", "--interval:appended_partition_2:all::",
        "-append_partition", "2", "0xef", "/w/iso/efiboot.img",
        "-appended_part_as_gpt",
        "-partition_cyl_align", "all",
        "-partition_offset", "16",
        "-iso_mbr_part_type", "0x83",
        "-no-emul-boot",
        "--", *NATIVE,
    ]  # fmt: skip
