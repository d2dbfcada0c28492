"""Boot a kernel + initramfs in qemu (TCG) and read the demo init's DEMO-* report.

Meant for tests of anything that rebuilds the demo initramfs (the factory's builder): boot the
result and assert on `BootReport`. KVM does not work on our machines, so the accelerator is always
TCG (lab REPORT §0); the demo init powers off, and `-no-reboot` makes qemu exit with it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from services.shared.tools import run_tool

# `DEMO-<KIND>: <value>`, or `DEMO-DONE uptime=…` (no colon).
_LINE = re.compile(r"^DEMO-([A-Z]+(?:-[A-Z]+)*):? ?(.*?)\s*$")


def qemu_argv(kernel: Path, initrd: Path, append: str = "console=ttyS0", memory_mb: int = 512) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", "tcg",
        "-nographic", "-serial", "mon:stdio",
        "-m", str(memory_mb), "-no-reboot",
        "-kernel", os.fspath(kernel),
        "-initrd", os.fspath(initrd),
        "-append", append,
    ]  # fmt: skip


@dataclass
class BootReport:
    console: str
    duration: float
    cmdline: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)  # name -> version
    schematic: str | None = None
    kmods: list[str] = field(default_factory=list)
    insmod: list[str] = field(default_factory=list)
    firmware: list[str] = field(default_factory=list)
    microcode: list[str] = field(default_factory=list)
    rootfs: str | None = None
    errors: list[str] = field(default_factory=list)
    done: bool = False

    @classmethod
    def parse(cls, console: str, duration: float) -> BootReport:
        report = cls(console, duration)
        for raw in console.splitlines():
            match = _LINE.match(raw.replace("\r", ""))
            if match is None:
                continue
            kind, value = match[1], match[2]
            if kind == "CMDLINE":
                report.cmdline = value
            elif kind == "EXTENSION":
                name, _, version = value.partition(" ")
                report.extensions[name] = version
            elif kind == "SCHEMATIC":
                report.schematic = value
            elif kind == "ROOTFS":
                report.rootfs = value
            elif kind == "DONE":
                report.done = True
            else:
                lists = {"KMOD": report.kmods, "INSMOD": report.insmod, "FIRMWARE": report.firmware}
                lists.update({"MICROCODE": report.microcode, "ERROR": report.errors})
                if kind in lists:
                    lists[kind].append(value)
        return report


async def boot(kernel: Path, initrd: Path, append: str = "console=ttyS0", timeout: float = 120) -> BootReport:  # noqa: ASYNC109
    """Run qemu until the guest powers off (or `timeout` kills it) and parse the console."""
    return await run_qemu(qemu_argv(kernel, initrd, append), timeout=timeout)


def netboot_argv(script_url: str, memory_mb: int = 512) -> list[str]:
    """BIOS iPXE (SeaBIOS + the NIC's iPXE ROM) chain-loading `script_url`; the host is 10.0.2.2."""
    return [
        "qemu-system-x86_64", "-accel", "tcg",
        "-nographic", "-serial", "mon:stdio",
        "-m", str(memory_mb), "-no-reboot",
        "-netdev", f"user,id=n0,bootfile={script_url}",
        "-device", "virtio-net-pci,netdev=n0",
        "-boot", "n",
    ]  # fmt: skip


async def run_qemu(argv: list[str], timeout: float = 120) -> BootReport:  # noqa: ASYNC109
    """Run a qemu command line until the guest powers off (or `timeout` kills it); parse the console."""
    result = await run_tool(argv, timeout=timeout)
    return BootReport.parse(result.stdout.decode(errors="replace"), result.duration)
