"""A reproducible newc cpio writer (imager spec §1.1, §4.7).

Written in Python instead of running `cpio --reproducible`: GNU cpio archives files from disk, so a
`/dev/console` node would need `mknod` (root) and every mtime/owner would have to be fixed on disk
first. Here each member is described in memory: uid/gid 0, one mtime, inodes numbered 1, 2, … in
archive order, device numbers 0 — the same normalisation `cpio --reproducible -R +0:+0` applies.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Member:
    """One archive member; `mode` includes the file type bits (`stat.S_IFREG | 0o644`)."""

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644) -> Member:
        return cls(path, stat.S_IFREG | mode, data)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> Member:
        return cls(path, stat.S_IFDIR | mode)

    @classmethod
    def char_device(cls, path: str, major: int, minor: int, mode: int = 0o600) -> Member:
        return cls(path, stat.S_IFCHR | mode, rdev=(major, minor))

    @classmethod
    def symlink(cls, path: str, target: str) -> Member:
        return cls(path, stat.S_IFLNK | 0o777, target.encode())


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, member: Member, nlink: int, mtime: int) -> bytes:
    name = member.path.encode() + b"\0"
    fields = (
        ino, member.mode, 0, 0, nlink, mtime, len(member.data),
        0, 0, member.rdev[0], member.rdev[1], len(name), 0,
    )  # fmt: skip
    head = _MAGIC + b"".join(b"%08X" % f for f in fields) + name
    return head + _pad4(len(head))


def newc_archive(members: Iterable[Member], mtime: int) -> bytes:
    """Members in the given order, then the trailer; padded to 512 bytes like GNU cpio.

    Regular files get nlink 1 so the kernel never tries to hard-link two of them (it does for
    nlink ≥ 2 with equal inode numbers); directories get 2.
    """
    out = bytearray()
    for ino, member in enumerate(members, start=1):
        if member.path.startswith("/") or not member.path:
            raise ValueError(f"cpio member paths are relative: {member.path!r}")
        nlink = 2 if stat.S_ISDIR(member.mode) else 1
        out += _header(ino, member, nlink, mtime)
        out += member.data + _pad4(len(member.data))
    out += _header(0, Member(_TRAILER, 0), 1, 0)
    out += b"\0" * (-len(out) % 512)
    return bytes(out)


def with_parents(members: Iterable[Member]) -> list[Member]:
    """Add the missing parent directories (0755) and sort by path bytes, as `find | LC_ALL=C sort`."""
    by_path = {m.path: m for m in members}
    for path in list(by_path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            by_path.setdefault("/".join(parts[:i]), Member.directory("/".join(parts[:i])))
    return [by_path[p] for p in sorted(by_path, key=lambda p: p.encode())]


def read_newc(data: bytes) -> dict[str, Member]:
    """Members of one uncompressed newc archive by path (up to the trailer), for checks and tests."""
    members: dict[str, Member] = {}
    pos = 0
    while True:
        if data[pos : pos + 6] != _MAGIC:
            raise ValueError(f"no newc header at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmajor, rminor, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_end = pos + 110 + namesize
        name = data[pos + 110 : name_end - 1].decode()
        start = name_end + (-name_end % 4)
        if name == _TRAILER:
            return members
        members[name] = Member(name, mode, data[start : start + size], (rmajor, rminor))
        pos = start + size + (-(start + size) % 4)
