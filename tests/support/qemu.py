"""Boot an image in qemu (TCG) and watch its serial console (lab REPORT §3/§4, "Boot helper").

qemu runs in the background with serial + monitor on stdio redirected to a log file. The helper polls the
log and kills qemu (by its PID, nothing else) as soon as a success or refusal pattern appears or the
timeout expires; a guest that runs `poweroff -f` under `-no-reboot` makes qemu exit by itself. KVM does not
work on our machines, so `-accel tcg` is always passed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devtools.demo_release.boot import BootReport
from tests.support.real_tools import require_file, require_tools

QEMU = "qemu-system-x86_64"
OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
OVMF_SECBOOT_CODE = OVMF_DIR / "OVMF_CODE_4M.secboot.fd"
# OVMF's answer when nothing bootable was accepted (e.g. Secure Boot refusal), lab REPORT §4.
UEFI_NO_BOOT = r"No bootable option or device was found"

Outcome = Literal["success", "refused", "exited", "timeout"]


@dataclass(frozen=True)
class BootResult:
    outcome: Outcome
    serial: str  # the whole console log, CR removed
    duration: float
    returncode: int | None  # None when qemu was killed

    def lines(self, prefix: str) -> list[str]:
        """The rest of each line after `prefix` (which may follow firmware escape sequences on that line)."""
        return re.findall(re.escape(prefix) + r"([^\n]*)", self.serial)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.serial.splitlines()[-n:])


def qemu_base_argv(*, memory_mb: int = 512, network: bool = False) -> list[str]:
    argv = [QEMU, "-accel", "tcg", "-nographic", "-serial", "mon:stdio", "-no-reboot", "-m", str(memory_mb)]
    return argv if network else [*argv, "-nic", "none"]


def ovmf_argv(workdir: Path) -> list[str]:
    """UEFI firmware as pflash: read-only CODE plus this boot's own copy of VARS."""
    require_tools(QEMU)
    code = require_file(OVMF_CODE)
    variables = workdir / f"OVMF_VARS.{time.monotonic_ns()}.fd"
    shutil.copyfile(require_file(OVMF_VARS), variables)
    return [
        "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,file={variables}",
    ]  # fmt: skip


def cdrom_argv(iso: Path) -> list[str]:
    return ["-drive", f"file={iso},media=cdrom,format=raw,readonly=on", "-boot", "d"]


def disk_argv(image: Path, interface: str = "virtio", fmt: str = "raw") -> list[str]:
    """A writable-looking disk whose writes go to a temporary overlay (`snapshot=on`); `fmt` is qemu's
    format name (`raw`, `qcow2`, `vpc` for VHD)."""
    return ["-drive", f"file={image},format={fmt},if={interface},snapshot=on"]


def boot(
    argv: list[str],
    *,
    log: Path,
    success: str,
    refusal: str | None = None,
    timeout: float = 120,
    keys: Sequence[tuple[str, bytes]] = (),
    memory_mb: int = 512,
    network: bool = False,
    grace: float = 0.3,
) -> BootResult:
    """Run qemu with `qemu_base_argv() + argv` and watch `log` for `success`/`refusal` (regexes).

    `keys` types bytes on the serial console the first time a regex shows up, e.g. Enter at systemd-boot's
    "Boot in 10 s." so the real 10 s menu timeout does not cost 10 s of test time.
    """
    require_tools(QEMU)
    ok, bad = re.compile(success), re.compile(refusal) if refusal else None
    pending = [(re.compile(pattern), data) for pattern, data in keys]
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*qemu_base_argv(memory_mb=memory_mb, network=network), *argv],
            stdin=subprocess.PIPE if pending else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    outcome: Outcome = "timeout"
    try:
        while True:
            text = _read(log)
            for item in [k for k in pending if k[0].search(text)]:
                pending.remove(item)
                if proc.stdin is not None and proc.poll() is None:
                    proc.stdin.write(item[1])
                    proc.stdin.flush()
            if ok.search(text):
                outcome = "success"
            elif bad is not None and bad.search(text):
                outcome = "refused"
            elif proc.poll() is not None:
                outcome = "exited"
            elif time.monotonic() - start > timeout:
                outcome = "timeout"
            else:
                time.sleep(0.1)
                continue
            break
        if outcome in ("success", "refused"):
            # let a powering-off guest finish on its own, so the log ends cleanly
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL to this PID: only the qemu we started
            proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
    returncode = proc.returncode if proc.returncode is not None and proc.returncode >= 0 else None
    return BootResult(outcome, _read(log), time.monotonic() - start, returncode)


def _read(log: Path) -> str:
    return log.read_bytes().decode(errors="replace").replace("\r", "")


def secboot_argv(variables: Path) -> list[str]:
    """OVMF's Secure Boot build: q35 with SMM and a secure pflash, else it aborts (lab REPORT §4)."""
    code = require_file(OVMF_SECBOOT_CODE)
    return [
        "-machine", "q35,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
    ]  # fmt: skip


def enrolled_vars(dest: Path, cert: Path, owner: str = "a1a2a3a4-0000-4000-8000-000000000001") -> Path:
    """A copy of OVMF's variable store in user mode: `cert` (PEM) as PK, KEK and db, no Microsoft keys,
    Secure Boot on, written by PyPI virt-firmware's `virt-fw-vars` (lab REPORT §4)."""
    tool = Path(sys.executable).with_name("virt-fw-vars")
    require_file(tool)
    argv = [
        tool, "-i", require_file(OVMF_VARS), "-o", dest,
        "--set-pk", owner, cert, "--add-kek", owner, cert, "--add-db", owner, cert, "--no-microsoft", "--sb",
    ]  # fmt: skip
    subprocess.run([str(a) for a in argv], capture_output=True, timeout=120, check=True)
    return dest


# The demo release's disks: systemd-boot's menu gets Enter (not its 10 s timeout); the demo init prints
# DEMO-DONE once it has reported.
SDBOOT_MENU = [(r"Boot in \d+ s", b"\r")]


def boot_demo_disk(argv: list[str], log: Path) -> BootResult:
    """Boot a demo release disk until its init is done or the firmware gives up (150 s at most)."""
    return boot(argv, log=log, success=r"DEMO-DONE", refusal=UEFI_NO_BOOT, timeout=150, keys=SDBOOT_MENU)


def demo_report(result: BootResult, schematic: str, *in_cmdline: str) -> BootReport:
    """The report of a successful boot, checked: this schematic, these kernel arguments."""
    assert result.outcome == "success", result.tail()
    report = BootReport.parse(result.serial, result.duration)
    assert report.schematic == schematic
    assert report.cmdline is not None
    for argument in in_cmdline:
        assert argument in report.cmdline, (argument, report.cmdline)
    return report
