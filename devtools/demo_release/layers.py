"""Reproducible image layers: sorted tar entries, uid/gid 0, one mtime, gzip with mtime 0.

Layers are `application/vnd.oci.image.layer.v1.tar+gzip`; the config lists each layer's `diff_id`
(sha256 of the uncompressed tar). Compressed layers are cached by diff_id, so a second publish only
re-tars (milliseconds) and never re-gzips the 14 MB kernel.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cache import CacheDir


@dataclass(frozen=True)
class Entry:
    """A tar member: a file (`data` set), a directory, or a symlink (`link` set)."""

    path: str  # relative, no leading "/"
    data: bytes | None = None
    mode: int = 0o644
    link: str | None = None

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644) -> Entry:
        return cls(path, data, mode)

    @classmethod
    def executable(cls, path: str, data: bytes) -> Entry:
        return cls(path, data, 0o755)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path, None, mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, None, 0o777, target)


def tar_bytes(entries: Iterable[Entry], mtime: int) -> bytes:
    """Uncompressed tar with implied parent directories, sorted by path (PAX only where needed)."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        if entry.path.startswith("/") or entry.path in ("", "."):
            raise ValueError(f"layer paths are relative: {entry.path!r}")
        by_path[entry.path] = entry
        parts = entry.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            by_path.setdefault("/".join(parts[:i]), Entry.directory("/".join(parts[:i])))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path, key=lambda p: p.encode()):
            entry = by_path[path]
            info = tarfile.TarInfo(path)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = entry.mode, mtime, 0, 0, "", ""
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buf.getvalue()


@dataclass(frozen=True)
class Layer:
    diff_id: str  # sha256 of the tar
    digest: str  # sha256 of the gzip blob
    size: int
    path: Path  # the gzip blob in the cache

    def read(self) -> bytes:
        return self.path.read_bytes()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def make_layer(cache: CacheDir, entries: Iterable[Entry], mtime: int) -> Layer:
    """Tar `entries` and gzip them, or reuse the cached blob with the same diff_id."""
    tar = tar_bytes(entries, mtime)
    diff_id = _sha256(tar)
    index = cache.layers / f"{diff_id.removeprefix('sha256:')}.json"
    if index.is_file():
        meta = json.loads(index.read_text())
        blob = cache.blob_path(meta["digest"])
        if blob.is_file():
            return Layer(diff_id, meta["digest"], meta["size"], blob)
    # zlib releases the GIL: versions compress in parallel on both cores.
    data = await asyncio.to_thread(gzip.compress, tar, 6, mtime=0)
    digest = _sha256(data)
    blob = cache.blob_path(digest)
    cache.write_atomic(blob, data)
    cache.write_atomic(index, json.dumps({"digest": digest, "size": len(data)}).encode())
    return Layer(diff_id, digest, len(data), blob)
