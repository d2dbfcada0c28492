"""grub-mkrescue for the GRUB ISO and the hybrid ISO, and the ISO's grub.cfg (imager spec §5.2, §5.4).

Talos' GRUB talks to the firmware console only (`terminal_input/output console`); the serial console is the
kernel's business (`console=ttyS0` in the cmdline, §3). Under OVMF the firmware console is mirrored to the
serial port anyway.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from services.builder.steps.xorriso import EFIBOOT_IMG, IsoIdentity, iso_tool_env, native_commands
from services.shared.tools import run_tool

GRUB_I386_PC = Path("/usr/lib/grub/i386-pc")
_QUOTED = frozenset('\\{}&$|;<>"')
_TIMEOUT = 600

# §5.2 template, verbatim (TAB indentation). The reset entry exists from 1.4 (SupportsResetGRUBOption).
_HEAD = """\
set default=0
set timeout=3

insmod all_video

terminal_input console
terminal_output console

menuentry "Talos ISO" {{
\tset gfxmode=auto
\tset gfxpayload=text
\tlinux /boot/vmlinuz {cmdline}
\tinitrd /boot/initramfs.xz
}}

"""
_RESET = """\
menuentry "Reset Talos installation" {{
\tset gfxmode=auto
\tset gfxpayload=text
\tlinux /boot/vmlinuz {cmdline} talos.experimental.wipe=system
\tinitrd /boot/initramfs.xz
}}
"""


def grub_quote(text: str) -> str:
    """§5.2 `quote`: backslash before each of `\\ { } & $ | ; < > "` (spaces still split arguments)."""
    return "".join("\\" + c if c in _QUOTED else c for c in text)


def iso_grub_cfg(cmdline: str, *, reset_option: bool) -> str:
    """`boot/grub/grub.cfg` of the GRUB and hybrid ISOs (§5.2)."""
    if "\n" in cmdline:
        raise ValueError("the kernel command line must be one line")
    quoted = grub_quote(cmdline)
    return _HEAD.format(cmdline=quoted) + (_RESET.format(cmdline=quoted) if reset_option else "")


def mkrescue_grub_argv(scratch: Path, out: Path, identity: IsoIdentity) -> list[str]:
    """§5.2: BIOS + UEFI GRUB ISO with every GRUB platform grub-mkrescue finds."""
    return [
        "grub-mkrescue", "--compress=xz", f"--output={os.fspath(out)}", "--verbose",
        os.fspath(scratch),
        "-iso-level", "3",
        "--", *native_commands(identity),
    ]  # fmt: skip


def mkrescue_hybrid_argv(
    scratch: Path, out: Path, identity: IsoIdentity, *, i386_pc_dir: Path = GRUB_I386_PC
) -> list[str]:
    """§5.4: BIOS GRUB (i386-pc only) + the UEFI `efiboot.img` (sd-boot) as appended GPT partition 2."""
    return [
        "grub-mkrescue", "--compress=xz", f"--output={os.fspath(out)}", "--verbose",
        f"--directory={os.fspath(i386_pc_dir)}",
        "-m", EFIBOOT_IMG, "-iso-level", "3",
        os.fspath(scratch),
        "-eltorito-alt-boot",
        "-e", "--interval:appended_partition_2:all::",
        "-append_partition", "2", "0xef", os.fspath(scratch / EFIBOOT_IMG),
        "-appended_part_as_gpt",
        "-partition_cyl_align", "all",
        "-partition_offset", "16",
        "-iso_mbr_part_type", "0x83",
        "-no-emul-boot",
        "--", *native_commands(identity),
    ]  # fmt: skip


async def run_grub_mkrescue(argv: Sequence[str], identity: IsoIdentity) -> None:
    # grub-mkrescue runs xorriso and mtools itself; both honour SOURCE_DATE_EPOCH from the environment.
    await run_tool(argv, timeout=_TIMEOUT, env_extra=iso_tool_env(identity))
