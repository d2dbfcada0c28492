"""A real Debian kernel and a tiny busybox initramfs for boot tests (lab REPORT §3 "Kernel and initramfs").

The kernel is the package `linux-image-cloud-amd64` currently depends on, fetched with `apt-get download` and
unpacked with `dpkg-deb -x` (nothing is installed), cached under $IF_TEST_CACHE (default /tmp/if-test-cache).
The initramfs is written in Python (newc cpio, xz with CRC32 as the kernel requires), so device nodes need no
root and no cpio binary.
"""

from __future__ import annotations

import fcntl
import lzma
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.real_tools import require_file, require_tools

META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = Path("/bin/busybox")  # busybox-static: no shared libraries needed inside the initramfs


def cache_root() -> Path:
    root = Path(os.environ.get("IF_TEST_CACHE", "/tmp/if-test-cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class DebianKernel:
    package: str  # e.g. linux-image-6.1.0-56-cloud-amd64
    release: str  # uname -r, e.g. 6.1.0-56-cloud-amd64
    vmlinuz: Path
    modules_dir: Path  # <unpacked .deb>/lib/modules/<release>


def debian_kernel(meta_package: str = META_PACKAGE) -> DebianKernel:
    """Download (once) and unpack the kernel package; skip the test (fail in CI) when that is impossible."""
    require_tools("apt-cache", "apt-get", "dpkg-deb")
    package = _current_dependency(meta_package)
    target = cache_root() / "debian-kernel" / package
    with _locked(cache_root() / "debian-kernel.lock"):
        if not (target / ".complete").exists():
            _fetch(package, target)
    (vmlinuz,) = sorted((target / "boot").glob("vmlinuz-*"))
    modules = next(
        p for base in ("lib", "usr/lib") for p in sorted((target / base / "modules").glob("*")) if p.is_dir()
    )
    return DebianKernel(package, modules.name, vmlinuz, modules)


def _current_dependency(meta_package: str) -> str:
    out = _run(["apt-cache", "depends", meta_package], "apt-cache depends")
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Depends" and value.startswith("linux-image-"):
            return value
    _unavailable(f"{meta_package} has no linux-image dependency (run apt-get update?)")


def _fetch(package: str, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        _run(["apt-get", "download", package], "apt-get download", cwd=Path(tmp))
        (deb,) = Path(tmp).glob("*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], "dpkg-deb -x")
        (Path(tmp) / "x" / ".complete").write_text(package + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "x").rename(target)


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        _unavailable(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _newc(name: str, mode: int, data: bytes = b"", *, ino: int, rdev: tuple[int, int] = (0, 0)) -> bytes:
    fields = [ino, mode, 0, 0, 1 if not mode & 0o040000 else 2, 0, len(data), 0, 0, rdev[0], rdev[1]]
    encoded = name.encode() + b"\0"
    header = b"070701" + b"".join(b"%08X" % v for v in fields) + b"%08X%08X" % (len(encoded), 0)
    blob = header + encoded
    blob += bytes(-len(blob) % 4) + data
    return blob + bytes(-len(blob) % 4)


def busybox_initramfs(out: Path, init_script: str, files: Mapping[str, bytes] | None = None) -> Path:
    """Write an xz newc initramfs: /bin/busybox, /dev/console, /dev/null, /init = `init_script`, + `files`."""
    busybox = require_file(BUSYBOX).read_bytes()
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        *((d, 0o040755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys", "tmp")),
        ("bin/busybox", 0o100755, busybox, (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("dev/null", 0o020666, b"", (1, 3)),
        ("init", 0o100755, init_script.encode(), (0, 0)),
    ]
    entries += [(name, 0o100644, data, (0, 0)) for name, data in sorted((files or {}).items())]
    archive = b"".join(_newc(n, m, d, ino=i + 1, rdev=r) for i, (n, m, d, r) in enumerate(entries))
    archive += _newc("TRAILER!!!", 0, ino=0)
    out.write_bytes(lzma.compress(archive, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    return out
