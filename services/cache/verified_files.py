"""Remember which files on disk were hashed and matched, so large blobs are not re-hashed on every read.

A match is remembered for the file's exact on-disk identity (inode, size, mtime and ctime in
nanoseconds). Any write to the file changes its ctime, which user space cannot set back, so a tampered
file is always hashed again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

from services.shared.streams import CHUNK_SIZE

FileIdentity = tuple[int, int, int, int]
_MEMO_SIZE = 4096


def identity(path: Path) -> FileIdentity:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


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
        self._memo[(str(path), identity(path))] = digest
        while len(self._memo) > _MEMO_SIZE:
            self._memo.popitem(last=False)

    def problem(self, path: Path, size: int, digest: str) -> str | None:
        """None when `path` has exactly `size` bytes hashing to `digest`; otherwise why not. Blocking."""
        try:
            ident = identity(path)
        except FileNotFoundError:
            return "blob missing"
        if ident[1] != size:
            return f"size {ident[1]} != {size}"
        if self._memo.get((str(path), ident)) == digest:
            return None
        actual = sha256_file(path)
        if actual != digest:
            return f"digest {actual} != {digest}"
        self.remember(path, digest)
        return None
