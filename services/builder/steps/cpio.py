"""newc cpio writer and reader (imager spec §4.1 input, §4.5 step 1, §4.7 rebuild, §12 initramfs checks).

Written in Python rather than by running GNU `cpio`: the format is 13 hex fields and some padding, and
writing it ourselves lets every member get the same mtime (§13 lists cpio mtimes as *not* normalized
upstream; we do normalize them), uid/gid 0 and inode numbers 0, 1, 2, … without first `touch`ing the
scratch tree. For an identical tree with identical mtimes the bytes equal
`cpio -H newc --create --reproducible --quiet -R +0:+0` (GNU cpio 2.13, checked by a unit test):
uppercase hex, names NUL-terminated and padded to 4, data padded to 4, `TRAILER!!!`, archive padded
with NULs to 512 bytes. The reader walks such archives, including several concatenated ones.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from services.shared.errors import InvalidArgument

MAGIC = b"070701"
_CRC_MAGIC = b"070702"  # same layout plus a checksum; accepted when reading
TRAILER = "TRAILER!!!"
HEADER_SIZE = 110  # magic + 13 fields of 8 hex digits
BLOCK = 512  # GNU cpio pads the whole archive to its 512-byte I/O block
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CpioMember:
    """One member to write. `mode` is a full st_mode; content comes from `source` or `data`."""

    name: str  # relative, "/"-separated, no "./"
    mode: int
    source: Path | None = None  # regular file on disk (streamed)
    data: bytes = b""  # inline content: a symlink target or a small file
    nlink: int = 1

    @property
    def size(self) -> int:
        return self.source.stat().st_size if self.source is not None else len(self.data)


@dataclass(frozen=True)
class CpioEntry:
    """One member read back. `data` is empty when the reader was asked to skip contents."""

    name: str
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    ino: int
    size: int
    data: bytes = b""


def members_from_tree(root: Path, names: Iterable[str]) -> list[CpioMember]:
    """Members for `names` (relative to `root`, in archive order), from lstat.

    A directory's nlink is 2 + its subdirectories in the list, which is what ext4/tmpfs report for a
    complete tree, so the archive does not depend on the scratch filesystem's link counting."""
    names = list(names)
    subdirs: dict[str, int] = {}
    infos = {name: (root / name).lstat() for name in names}
    for name, st in infos.items():
        if stat.S_ISDIR(st.st_mode) and "/" in name:
            parent = name.rsplit("/", 1)[0]
            subdirs[parent] = subdirs.get(parent, 0) + 1
    members = []
    for name in names:
        st, path = infos[name], root / name
        if stat.S_ISDIR(st.st_mode):
            members.append(CpioMember(name, st.st_mode, nlink=2 + subdirs.get(name, 0)))
        elif stat.S_ISLNK(st.st_mode):
            members.append(CpioMember(name, st.st_mode, data=os.fsencode(path.readlink())))
        elif stat.S_ISREG(st.st_mode):
            members.append(CpioMember(name, st.st_mode, source=path))
        else:
            raise InvalidArgument(f"cpio: unsupported file type for {name!r}")
    return members


def _header(*, ino: int, mode: int, nlink: int, mtime: int, size: int, namesize: int) -> bytes:
    # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, namesize, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_newc(out: BinaryIO, members: Iterable[CpioMember], *, mtime: int) -> int:
    """Write one archive (members, trailer, NUL padding to 512); returns the bytes written."""
    written = 0

    def put(chunk: bytes) -> None:
        nonlocal written
        out.write(chunk)
        written += len(chunk)

    def put_entry(ino: int, name: str, mode: int, nlink: int, entry_mtime: int, size: int) -> None:
        encoded = os.fsencode(name) + b"\0"
        head = _header(ino=ino, mode=mode, nlink=nlink, mtime=entry_mtime, size=size, namesize=len(encoded))
        put(head + encoded + _pad4(HEADER_SIZE + len(encoded)))

    for ino, member in enumerate(members):
        size = member.size
        put_entry(ino, member.name, member.mode, member.nlink, mtime, size)
        if member.source is not None:
            with member.source.open("rb") as src:
                copied = 0
                while chunk := src.read(_CHUNK):
                    put(chunk)
                    copied += len(chunk)
            if copied != size:
                raise InvalidArgument(f"cpio: {member.name} changed size while archiving")
        else:
            put(member.data)
        put(_pad4(size))
    put_entry(0, TRAILER, 0, 1, 0, 0)  # GNU cpio's trailer: ino 0, nlink 1, mtime 0
    put(b"\0" * (-written % BLOCK))
    return written


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise InvalidArgument("cpio: truncated archive")
    return data


def _skip(f: BinaryIO, n: int) -> None:
    while n > 0:
        n -= len(_read_exact(f, min(n, _CHUNK)))


def _next_header(f: BinaryIO) -> tuple[CpioEntry, bool] | None:
    """Read one header and name; None at end of input. The bool says "trailer"."""
    head = f.read(HEADER_SIZE)
    if not head:
        return None
    if len(head) != HEADER_SIZE or head[:6] not in (MAGIC, _CRC_MAGIC):
        raise InvalidArgument("cpio: not a newc archive")
    try:
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    except ValueError:
        raise InvalidArgument("cpio: malformed header") from None
    ino, mode, uid, gid, nlink, mtime, size, *_, namesize, _check = fields
    raw = _read_exact(f, namesize)
    _skip(f, -(HEADER_SIZE + namesize) % 4)
    name = os.fsdecode(raw.rstrip(b"\0"))
    return CpioEntry(name, mode, uid, gid, nlink, mtime, ino, size), name == TRAILER


def iter_newc(f: BinaryIO, *, load_data: bool = True) -> Iterator[CpioEntry]:
    """Members of one archive, up to (not including) its trailer."""
    while (got := _next_header(f)) is not None:
        entry, trailer = got
        if trailer:
            return
        if load_data:
            entry = replace(entry, data=_read_exact(f, entry.size))
        else:
            _skip(f, entry.size)
        _skip(f, -entry.size % 4)
        yield entry
    raise InvalidArgument("cpio: archive has no trailer")


def extract_member(f: BinaryIO, name: str, dest: Path) -> bool:
    """Stream member `name` of the archive(s) in `f` to `dest` (§4.5: `rootfs.sqsh`); False if absent."""
    while (got := _next_header(f)) is not None:
        entry, trailer = got
        if trailer:
            _skip_padding(f)
            continue
        if entry.name == name and stat.S_ISREG(entry.mode):
            with dest.open("wb") as out:
                remaining = entry.size
                while remaining:
                    chunk = _read_exact(f, min(remaining, _CHUNK))
                    out.write(chunk)
                    remaining -= len(chunk)
            return True
        _skip(f, entry.size + (-entry.size % 4))
    return False


def _skip_padding(f: BinaryIO) -> None:
    # Between concatenated archives there is only NUL padding; stop just before the next magic.
    while (byte := f.read(1)) == b"\0":
        pass
    if byte:
        f.seek(-1, os.SEEK_CUR)


def newc_prefix_length(data: bytes) -> int:
    """Length of a leading uncompressed archive plus its NUL padding (§12: the microcode cpio), or 0."""
    if not data.startswith(MAGIC):
        return 0
    f = io.BytesIO(data)
    for _ in iter_newc(f, load_data=False):
        pass
    end = f.tell()
    while end < len(data) and data[end] == 0:
        end += 1
    return end
