"""Remember which files on disk were hashed and matched, so large blobs are not re-hashed on every read.

A match is remembered for the file's exact on-disk identity (device, inode, size, mtime and ctime in
nanoseconds). Any write to the file changes its ctime, which user space cannot set back, so a tampered
file is always hashed again.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from services.shared.streams import CHUNK_SIZE

# (device, inode, size, mtime_ns, ctime_ns)
FileIdentity = tuple[int, int, int, int, int]
_MEMO_SIZE = 4096


def identity(path: Path) -> FileIdentity:
    return stat_identity(path.stat())


def stat_identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class VerifiedFiles:
    def __init__(self) -> None:
        self._memo: OrderedDict[tuple[str, FileIdentity], str] = OrderedDict()

    def remember(self, path: Path, digest: str) -> None:
        """Record a file we just wrote and hashed ourselves."""
        self._remember(path, identity(path), digest)

    def _remember(self, path: Path, ident: FileIdentity, digest: str) -> None:
        self._memo[(str(path), ident)] = digest
        while len(self._memo) > _MEMO_SIZE:
            self._memo.popitem(last=False)

    def check(self, path: Path, size: int, digest: str) -> tuple[str | None, FileIdentity | None]:
        """(None, identity) when `path` has exactly `size` bytes hashing to `digest`; else (why not, None).

        Blocking: run it in a thread.
        """
        try:
            ident = identity(path)
        except FileNotFoundError:
            return "blob missing", None
        if ident[2] != size:
            return f"size {ident[2]} != {size}", None
        if self._memo.get((str(path), ident)) == digest:
            return None, ident
        actual = sha256_file(path)
        if actual != digest:
            return f"digest {actual} != {digest}", None
        if identity(path) != ident:  # written while we hashed: what we hashed is not what is there now
            return "blob changed while it was verified", None
        self._remember(path, ident, digest)
        return None, ident
