"""Deterministic OCI images on disk: layers, config, manifest, index, image layout (imager §9, factory §9.2-§9.3).

Layers are reproducible: PAX tar, entries sorted by UTF-8 path, uid/gid 0 without owner names, one mtime
(the caller's SOURCE_DATE_EPOCH), then gzip with header mtime 0 and no file name. The gzip level is 1, the
default of go-containerregistry's `tarball.LayerFromOpener` that Talos' `filemap.Layer` uses: UKIs and
initramfs images are compressed already, so higher levels only cost time. Blobs are written as
`<name>.partial`, fsynced and renamed to their digest (STYLE §9); manifests and configs are compact JSON
with sorted keys, so the same inputs always give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

from services.shared.errors import VerificationFailed
from services.shared.oci import Descriptor, Manifest, Platform, digest_of, index_bytes
from services.shared.oci import media_types as mt

OCI_LAYOUT_FILE: Final = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME: Final = "org.opencontainers.image.ref.name"
GZIP_LEVEL: Final = 1
_CHUNK: Final = 1024 * 1024


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class TarEntry:
    """One layer member: a file (from `source` on disk or inline `data`), a directory or a symlink."""

    path: str  # relative POSIX path, no leading `/`, no trailing `/`
    kind: EntryKind = EntryKind.FILE
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    link: str | None = None

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.path).parts
        if not parts or self.path.startswith("/") or self.path.endswith("/") or any(p in (".", "..") for p in parts):
            raise ValueError(f"layer paths are relative and normalized: {self.path!r}")
        if self.kind is EntryKind.FILE and (self.source is None) == (self.data is None):
            raise ValueError(f"file {self.path!r} needs exactly one of source and data")
        if self.kind is EntryKind.SYMLINK and not self.link:
            raise ValueError(f"symlink {self.path!r} needs a target")

    @classmethod
    def file(cls, path: str, source: Path, mode: int = 0o644) -> TarEntry:
        return cls(path, EntryKind.FILE, mode, source=source)

    @classmethod
    def inline(cls, path: str, data: bytes, mode: int = 0o644) -> TarEntry:
        return cls(path, EntryKind.FILE, mode, data=data)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> TarEntry:
        return cls(path, EntryKind.DIR, mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> TarEntry:
        return cls(path, EntryKind.SYMLINK, 0o777, link=target)


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob on disk. `diff_id` (sha256 of the uncompressed tar) is set for layers."""

    descriptor: Descriptor
    path: Path
    diff_id: str | None = None

    @property
    def digest(self) -> str:
        return self.descriptor.digest


class _Sink(Protocol):
    def write(self, data: memoryview, /) -> int: ...


class _DigestWriter(io.RawIOBase):
    """Passes bytes through to `target` while hashing and counting them."""

    def __init__(self, target: _Sink) -> None:
        self._target = target
        self._sha = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._sha.update(view)
        self._target.write(view)
        self.count += len(view)
        return len(view)

    def tell(self) -> int:
        return self.count

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def sorted_entries(entries: Sequence[TarEntry]) -> list[TarEntry]:
    """Entries ordered by UTF-8 path bytes (Go `cmp.Compare` on strings); duplicates are refused."""
    by_path: dict[str, TarEntry] = {}
    for entry in entries:
        if entry.path in by_path:
            raise ValueError(f"duplicate layer path {entry.path!r}")
        by_path[entry.path] = entry
    return [by_path[p] for p in sorted(by_path, key=lambda p: p.encode())]


def _add(tar: tarfile.TarFile, entry: TarEntry, mtime: int) -> None:
    info = tarfile.TarInfo(entry.path)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = entry.mode, mtime, 0, 0, "", ""
    if entry.kind is EntryKind.DIR:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind is EntryKind.SYMLINK:
        info.type, info.linkname = tarfile.SYMTYPE, entry.link or ""
        tar.addfile(info)
    elif entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
    else:
        assert entry.source is not None
        with entry.source.open("rb") as handle:
            info.size = os.fstat(handle.fileno()).st_size
            tar.addfile(info, handle)


@dataclass(frozen=True)
class OciLayout:
    """An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`)."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> OciLayout:
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = root / "oci-layout"
        if not marker.is_file():
            marker.write_bytes(OCI_LAYOUT_FILE)
        return cls(root)

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest

    def partial_path(self) -> Path:
        return self.root / "blobs" / "sha256" / f"{uuid.uuid4().hex}.partial"

    def commit(self, partial: Path, digest: str) -> Path:
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        final = self.blob_path(digest)
        partial.replace(final)
        return final

    def put_bytes(self, data: bytes, media_type: str) -> Blob:
        descriptor = Descriptor(media_type, digest_of(data), len(data))
        partial = self.partial_path()
        partial.write_bytes(data)
        return Blob(descriptor, self.commit(partial, descriptor.digest))

    def adopt(self, blob: Blob, media_type: str | None = None) -> Blob:
        """Bring a blob from elsewhere into this layout (hard link, else copy), checking size and digest."""
        descriptor = blob.descriptor
        _verify_file(blob.path, descriptor)
        target = self.blob_path(descriptor.digest)
        if blob.path.resolve() != target.resolve():
            partial = self.partial_path()
            try:
                os.link(blob.path, partial)
            except OSError:
                shutil.copyfile(blob.path, partial)
            self.commit(partial, descriptor.digest)
        if media_type is not None and media_type != descriptor.media_type:
            descriptor = Descriptor(media_type, descriptor.digest, descriptor.size)
        return Blob(descriptor, target, blob.diff_id)

    def read_blob(self, descriptor: Descriptor) -> bytes:
        data = self.blob_path(descriptor.digest).read_bytes()
        if len(data) != descriptor.size or digest_of(data) != descriptor.digest:
            raise VerificationFailed(f"blob {descriptor.digest} in {self.root} does not match its descriptor")
        return data

    def index_entries(self) -> list[Descriptor]:
        obj = json.loads((self.root / "index.json").read_bytes())
        if not isinstance(obj, dict):
            raise VerificationFailed(f"{self.root}/index.json is not a JSON object")
        return [Descriptor.from_json(d) for d in obj.get("manifests") or []]

    def write_index(self, entries: Sequence[Descriptor]) -> None:
        """Replace `index.json` atomically (an OCI index of what the layout offers)."""
        partial = self.root / f"index.json.{uuid.uuid4().hex}.partial"
        partial.write_bytes(index_bytes(list(entries)))
        partial.replace(self.root / "index.json")


def _verify_file(path: Path, descriptor: Descriptor) -> None:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    if size != descriptor.size or "sha256:" + sha.hexdigest() != descriptor.digest:
        raise VerificationFailed(f"blob {path} does not match {descriptor.digest} ({descriptor.size} bytes)")


def write_layer(layout: OciLayout, entries: Sequence[TarEntry], *, mtime: int) -> Blob:
    """Tar and gzip `entries` into a `tar+gzip` layer blob of `layout`. Blocking: run it in a thread."""
    ordered = sorted_entries(entries)
    partial = layout.partial_path()
    try:
        with partial.open("wb") as raw:
            compressed = _DigestWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=compressed, mtime=0) as gz:
                plain = _DigestWriter(gz)
                with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for entry in ordered:
                        _add(tar, entry, mtime)
        descriptor = Descriptor(mt.OCI_LAYER_GZIP, compressed.digest, compressed.count)
        return Blob(descriptor, layout.commit(partial, compressed.digest), plain.digest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_config(
    *,
    arch: str,
    container_config: Mapping[str, Any],
    diff_ids: Sequence[str],
    history: Sequence[Mapping[str, Any]],
    created: int,
) -> bytes:
    """OCI image config: `architecture`, `os: linux`, the container `config`, `rootfs`, `history`."""
    if sum(1 for h in history if not h.get("empty_layer")) != len(diff_ids):
        raise ValueError("every layer needs exactly one non-empty history entry")
    return _json(
        {
            "architecture": arch,
            "os": "linux",
            "created": rfc3339(created),
            "config": dict(container_config),
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [dict(h) for h in history],
        }
    )


def image_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )


def resolve_image(layout: OciLayout, platform: Platform, ref_name: str | None = None) -> Manifest:
    """The image manifest for `platform` in `layout`: `index.json` → [nested index →] manifest."""
    entries = layout.index_entries()
    if ref_name is not None:
        entries = [e for e in entries if e.annotations.get(REF_NAME) == ref_name]
    if len(entries) > 1:
        entries = [e for e in entries if e.platform is None or e.platform.matches(platform)]
    if len(entries) != 1:
        raise VerificationFailed(f"{layout.root} has {len(entries)} candidate images for {platform}, want 1")
    manifest = Manifest(layout.read_blob(entries[0]), entries[0].media_type, entries[0].digest)
    if manifest.is_index:
        child = manifest.select(platform)
        manifest = Manifest(layout.read_blob(child), child.media_type, child.digest)
    if not mt.is_image_manifest(manifest.media_type):
        raise VerificationFailed(f"{manifest.digest} in {layout.root} is a {manifest.media_type}, not an image")
    return manifest
