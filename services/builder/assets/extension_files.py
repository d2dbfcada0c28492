"""Files that leave an extension's rootfs before it is squashed (imager spec §4.4) and the tree copy used
for kernel modules (§4.5 step 4), both after Talos `internal/pkg/extensions/compress.go`.

* Microcode: `<fw>/intel-ucode/*` and `<fw>/amd-ucode/microcode_amd*.bin` (each sorted) are appended to
  `kernel/x86/microcode/{GenuineIntel,AuthenticAMD}.bin` in the initramfs tree and deleted; those end up
  in the uncompressed cpio the kernel's early loader reads.
* Firmware: the rest of `<fw>` moves to the same path in the initramfs tree, then `<fw>` itself goes.

Copies follow symlinks (Go `os.Stat`/`os.Open`). New files and directories get the source permission
bits minus 022 — what Go's `OpenFile`/`MkdirAll` give under the imager's umask — set explicitly so the
result does not depend on our umask. Unlike Go, an existing destination file is truncated first.
"""

from __future__ import annotations

import fnmatch
import shutil
import stat
from pathlib import Path

MICROCODE_DIR = "kernel/x86/microcode"
# (directory under the firmware path, file pattern, destination in the initramfs tree)
MICROCODE = (
    ("intel-ucode", "*", f"{MICROCODE_DIR}/GenuineIntel.bin"),
    ("amd-ucode", "microcode_amd*.bin", f"{MICROCODE_DIR}/AuthenticAMD.bin"),
)
_UMASK = 0o022


def mkdir_all(path: Path, mode: int) -> None:
    """Go `os.MkdirAll(path, mode)`: every missing component gets `mode` (minus the umask)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir()
        directory.chmod(mode & ~_UMASK)


def copy_over(src: Path, dst: Path, *, move: bool) -> None:
    """Talos `handleFilesOp`: copy `src` onto `dst` recursively; `move` deletes each source afterwards."""
    st = src.stat()
    perm = stat.S_IMODE(st.st_mode) & 0o777
    if stat.S_ISDIR(st.st_mode):
        mkdir_all(dst, perm)
        for child in sorted(src.iterdir(), key=lambda p: p.name):
            copy_over(child, dst / child.name, move=move)
    else:
        existed = dst.exists()
        shutil.copyfile(src, dst)
        if not existed:
            dst.chmod(perm & ~_UMASK)
    if move:
        if src.is_dir() and not src.is_symlink():
            src.rmdir()
        else:
            src.unlink()


def move_early_files(rootfs: Path, tree: Path, firmware_path: str) -> None:
    """§4.4 for one extension: microcode appended into `tree/kernel/...`, firmware moved to `tree/<fw>`."""
    firmware = rootfs / firmware_path
    for subdir, pattern, destination in MICROCODE:
        source_dir = firmware / subdir
        if not source_dir.is_dir():
            continue
        matches = sorted(p for p in source_dir.iterdir() if fnmatch.fnmatchcase(p.name, pattern) and p.is_file())
        if not matches:
            continue
        blob = tree / destination
        mkdir_all(blob.parent, 0o755)
        created = not blob.exists()
        with blob.open("ab") as out:
            for match in matches:
                with match.open("rb") as f:
                    shutil.copyfileobj(f, out)
                match.unlink()
        if created:
            blob.chmod(0o644)
    if firmware.exists():
        copy_over(firmware, tree / firmware_path, move=True)
