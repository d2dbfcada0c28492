"""The BOOT filesystem: XFS populated from a protofile, no mounts (imager spec §7.3, §2.5 XFSMkfsConfig, §13).

Debian 12's xfsprogs 6.1 differs from Talos' in three ways, each handled here:

* `-c options=<lts_*.conf>`: 6.1 ships no lts_6.6/6.12/6.18.conf and rejects its own lts_6.1.conf
  (`[metadata]: nrext64=0` is not a config-file key there), so every config is spelled out as flags.
  Features the BOOT reader cannot handle are left off: GRUB 2.06 refuses the incompat features nrext64,
  exchange and parent (and 6.1 does not know exchange/parent/metadir/autofsck), so the later configs keep only
  what 6.1 + GRUB 2.06 share; rmapbt is ro-compat, which a read-only GRUB ignores, so it follows the config.
* `-p file=<proto>` is `-p <proto>` in 6.1.
* 6.1 stamps every inode with the current time (no SOURCE_DATE_EPOCH), so after mkfs `xfs_db -x` rewrites
  atime/mtime/ctime/crtime of each inode to the epoch; xfs_db recomputes the inode CRCs itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.shared.errors import Internal
from services.shared.tools import run_tool

MIB: Final = 1024 * 1024
# mkfs.xfs ≥5.19 refuses data sections under 300 MiB unless all three fstests variables are set (lab REPORT
# §6). BOOT is 1000/2000 MiB; only smaller test filesystems take this path.
MIN_SIZE: Final = 300 * MIB
_FSTESTS_ENV: Final = {"TEST_DIR": "/nonexistent", "TEST_DEV": "/nonexistent", "QA_CHECK_FS": "xfs"}
_TIMEOUT: Final = 300
_BASE_METADATA: Final = "bigtime=1,crc=1,finobt=1,inobtcount=1,reflink=1"
# Upstream lts_*.conf as xfsprogs 6.1 flags: (`-m` rmapbt, `-i` options); nrext64 stays 0 (GRUB 2.06).
_CONFIGS: Final = {
    "lts_6.1.conf": ("rmapbt=0", "sparse=1,nrext64=0"),
    "lts_6.6.conf": ("rmapbt=1", "sparse=1,nrext64=0"),
    "lts_6.12.conf": ("rmapbt=1", "sparse=1,nrext64=0"),
    "lts_6.18.conf": ("rmapbt=1", "sparse=1,nrext64=0"),
}
_LS_LINE: Final = re.compile(r"^\s*\d+\s+(\d+)\s+(\S+)\s+\S+\s+\d+\s+(\S+)")


@dataclass(frozen=True)
class XfsSpec:
    """`config` is `quirks.xfs_mkfs_config(version)`; `sector_size` 0 leaves mkfs.xfs's default (§7.7)."""

    label: str
    size: int
    fs_uuid: uuid.UUID
    config: str
    sector_size: int = 0

    def __post_init__(self) -> None:
        if not 0 < len(self.label) <= 12:
            raise ValueError(f"XFS label {self.label!r} must be 1-12 characters")
        if Path(self.config).name not in _CONFIGS:
            raise ValueError(f"unknown mkfs.xfs config {self.config!r}")
        if self.sector_size not in (0, 512, 4096) or self.size <= 0 or self.size % max(self.sector_size, 512):
            raise ValueError(f"XFS size {self.size} / sector size {self.sector_size} are not usable")


def feature_args(config: str) -> list[str]:
    rmapbt, inode = _CONFIGS[Path(config).name]
    return ["-m", f"{_BASE_METADATA},{rmapbt}", "-i", inode]


def mkfs_argv(spec: XfsSpec, image: Path, protofile: Path) -> list[str]:
    """§7.3 `mkfs.xfs -n ftype=1 -c options=… -f -L BOOT [-s size=S] -p … -m uuid=…`, Debian spelling."""
    sector = ["-s", f"size={spec.sector_size}"] if spec.sector_size else []
    return [
        "mkfs.xfs", "-n", "ftype=1", *feature_args(spec.config),
        "-f", "-L", spec.label, *sector,
        "-p", os.fspath(protofile),
        "-m", f"uuid={spec.fs_uuid}",
        os.fspath(image),
    ]  # fmt: skip


def mkfs_env(spec: XfsSpec) -> dict[str, str]:
    return dict(_FSTESTS_ENV) if spec.size < MIN_SIZE else {}


def protofile(root: Path) -> str:
    """§7.3 protofile of `root`: one space of indent per depth, files before directories, names sorted."""
    lines = ["/", "0 0", f"{_mode(root)} 0 0"]
    _walk(root, 1, lines)
    lines.append("$")
    return "\n".join(lines) + "\n"


def _walk(directory: Path, depth: int, lines: list[str]) -> None:
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    files = [p for p in entries if p.is_symlink() or not p.is_dir()]
    indent = " " * depth
    for path in files:
        if any(c.isspace() for c in path.name):
            raise ValueError(f"protofile names cannot contain whitespace: {path}")
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            lines.append(f"{indent}{path.name} {_mode(path)} 0 0 {path.absolute()}")
        elif stat.S_ISLNK(st.st_mode):
            lines.append(f"{indent}{path.name} {_mode(path)} 0 0 {path.readlink()}")
        elif stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
            dev = f"{os.major(st.st_rdev)} {os.minor(st.st_rdev)}"
            lines.append(f"{indent}{path.name} {_mode(path)} 0 0 {dev}")
        elif stat.S_ISFIFO(st.st_mode):
            lines.append(f"{indent}{path.name} {_mode(path)} 0 0")
        # sockets are skipped, as upstream does
    for path in (p for p in entries if p not in files):
        lines.append(f"{indent}{path.name} {_mode(path)} 0 0")
        _walk(path, depth + 1, lines)
        lines.append(f"{indent}$")


def _mode(path: Path) -> str:
    st = path.lstat()
    kinds = {stat.S_IFREG: "-", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFBLK: "b", stat.S_IFCHR: "c"}
    kind = kinds.get(stat.S_IFMT(st.st_mode), "p")
    suid = "u" if st.st_mode & stat.S_ISUID else "-"
    sgid = "g" if st.st_mode & stat.S_ISGID else "-"
    return f"{kind}{suid}{sgid}{stat.S_IMODE(st.st_mode) & 0o777:03o}"


def directories(root: Path) -> list[str]:
    """Every directory of the tree as an absolute XFS path (sorted, so parents come first)."""
    return ["/", *sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())]


def ls_argv(image: Path, dirs: list[str]) -> list[str]:
    listings = [a for d in dirs for a in ("-c", f"ls {d}")]
    return ["xfs_db", "-r", "-c", "sb 0", "-c", "p rootino rbmino rsumino", *listings, os.fspath(image)]


def parse_inodes(output: str) -> list[int]:
    """Inode numbers from `p rootino rbmino rsumino` and `ls` listings (`.` and `..` included), sorted."""
    found = {int(m) for m in re.findall(r"^\s*(?:rootino|rbmino|rsumino) = (\d+)", output, re.M)}
    found |= {int(m.group(1)) for line in output.splitlines() if (m := _LS_LINE.match(line))}
    return sorted(found)


def bigtime(epoch: int) -> int:
    """An XFS bigtime timestamp: nanoseconds since 1901-12-13T20:45:52Z (-2^31 s)."""
    return (epoch + (1 << 31)) * 1_000_000_000


def pin_times_argv(image: Path, inodes: list[int], epoch: int) -> list[str]:
    """`xfs_db -x` writes of all four timestamps; on bigtime filesystems `.sec` takes the whole 64-bit value."""
    value = bigtime(epoch)
    fields = ("core.atime.sec", "core.mtime.sec", "core.ctime.sec", "v3.crtime.sec")
    writes = [a for field in fields for a in ("-c", f"write {field} {value}")]
    commands = [a for ino in inodes for a in ("-c", f"inode {ino}", *writes)]
    return ["xfs_db", "-x", *commands, os.fspath(image)]


async def make_xfs_image(spec: XfsSpec, image: Path, root: Path, *, source_date_epoch: int) -> None:
    """Create `image` (sparse, `spec.size` bytes) holding the tree under `root`, timestamps pinned."""
    proto = image.with_name(image.name + ".proto")
    await asyncio.to_thread(_prepare, spec, image, proto, root)
    await run_tool(mkfs_argv(spec, image, proto), timeout=_TIMEOUT, env_extra=mkfs_env(spec))
    listing = await run_tool(ls_argv(image, directories(root)), timeout=_TIMEOUT)
    inodes = parse_inodes(listing.stdout.decode(errors="replace"))
    if len(inodes) < len(directories(root)):
        # fewer inodes than directories: xfs_db's listing format changed, pinning would silently miss some
        raise Internal(f"xfs_db listed only {len(inodes)} inodes for {image.name}; cannot pin timestamps")
    await run_tool(pin_times_argv(image, inodes, source_date_epoch), timeout=_TIMEOUT)
    await asyncio.to_thread(proto.unlink)


def _prepare(spec: XfsSpec, image: Path, proto: Path, root: Path) -> None:
    proto.write_text(protofile(root))
    with image.open("wb") as f:
        f.truncate(spec.size)
