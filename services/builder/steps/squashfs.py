"""Extension squashfs images (imager spec §4.3) and reading paths out of a squashfs (§4.5 step 2).

Upstream runs `mksquashfs <rootfs> -all-root -xattrs-exclude '.*' -p '<path> x security.selinux=<label>'`;
Debian 12's squashfs-tools 4.5.1 has neither flag, so (as §4.3 and lab report §7 recommend) we write a
PAX tar of the rootfs ourselves (uid/gid 0, modes kept, one fixed mtime, `SCHILY.xattr.security.selinux`
only where a label was recorded, on-disk xattrs never read) and feed it to `tar2sqfs` from
squashfs-tools-ng. Same data, same compression and block size; the bytes differ from mksquashfs' (§14.4).
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.builder.steps.initramfs_codec import Compression
from services.shared.errors import InvalidArgument
from services.shared.tools import run_tool

SELINUX_PAX = "SCHILY.xattr.security.selinux"


@dataclass(frozen=True)
class SquashfsSpec:
    """§4.3: zstd level 18 for Talos ≥1.8 (`UseZSTDCompression`), xz before; `mtime` = SOURCE_DATE_EPOCH."""

    compression: Compression
    mtime: int


def tar2sqfs_argv(spec: SquashfsSpec, out: Path) -> list[str]:
    # zstd = mksquashfs `-comp zstd -Xcompression-level 18`. xz = `-comp xz -Xdict-size 100%`, i.e. 100% of
    # the 128 KiB block: tar2sqfs 1.2.0 documents a `%` suffix but rejects it ("unknown suffix in '100%'").
    comp = ["-c", "zstd", "-X", "level=18"] if spec.compression == "zstd" else ["-c", "xz", "-X", "dictsize=131072"]
    return [
        "tar2sqfs", *comp,
        "-q", "-f",
        "-s",  # abort on an unreadable tar record instead of skipping it
        "-d", f"uid=0,gid=0,mode=0755,mtime={spec.mtime}",  # implicit dirs and the superblock time
        os.fspath(out),
    ]  # fmt: skip


def unsquashfs_argv(image: Path, dest: Path, path: str) -> list[str]:
    """§4.5 step 2: extract one path (e.g. `/usr/lib/modules`) without xattrs."""
    return ["unsquashfs", "-no-xattrs", "-d", os.fspath(dest), "-f", "-n", os.fspath(image), path]


def _walk(root: Path) -> Iterator[str]:
    """Relative paths under `root`, each directory level sorted, parents before children."""
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        yield entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from (f"{entry.name}/{child}" for child in _walk(Path(entry.path)))


def _tarinfo(name: str, st: os.stat_result, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = mtime
    info.uid = info.gid = 0  # -all-root
    info.uname = info.gname = ""
    return info


def pax_tar(root: Path, labels: Mapping[str, str], mtime: int) -> bytes:
    """The rootfs as a PAX tar. `labels` maps paths relative to `root` ("" = root) to SELinux labels;
    labels of paths no longer present (moved firmware, §4.4) are simply not used."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # "./" makes tar2sqfs take the root inode's mode (and label) from the rootfs directory.
        root_info = _tarinfo("./", root.stat(), mtime)
        root_info.type = tarfile.DIRTYPE
        if label := labels.get(""):
            root_info.pax_headers = {SELINUX_PAX: label}
        tar.addfile(root_info)
        for name in _walk(root):
            path = root / name
            st = path.lstat()
            info = _tarinfo(name, st, mtime)
            if label := labels.get(name):
                info.pax_headers = {SELINUX_PAX: label}
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.fspath(path.readlink())
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                raise InvalidArgument(f"extension file {name!r} is not a directory, regular file or symlink")
    # tarfile pads to a 10 KiB record; harmless for tar2sqfs.
    return buf.getvalue()


async def make_squashfs(root: Path, out: Path, spec: SquashfsSpec, labels: Mapping[str, str] | None = None) -> None:
    """§4.3 `Compress`: `root` → `out` (.sqsh). The tar is built in memory because `run_tool` feeds stdin
    from bytes; extension rootfs trees are small next to the Talos rootfs."""
    data = await asyncio.to_thread(pax_tar, root, labels or {}, spec.mtime)
    await run_tool(tar2sqfs_argv(spec, out), stdin=data, env_extra={"SOURCE_DATE_EPOCH": str(spec.mtime)})
    await asyncio.to_thread(out.chmod, 0o644)  # not left to the umask: the mode ends up in the initramfs cpio


async def unsquash_path(image: Path, dest: Path, path: str) -> None:
    await run_tool(unsquashfs_argv(image, dest, path))
