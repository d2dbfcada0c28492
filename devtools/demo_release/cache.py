"""The cache directory: downloads, extracted boot files, compressed initramfs and layers.

Layout (all content-addressed or keyed by package file name, so stale entries are harmless):

    debs/                      apt-get download results (*.deb)
    kernel/<kver>/             vmlinuz, config, modules/ (depmod output + the few .ko the demo uses)
    boot/                      busybox, systemd-bootx64.efi, linuxx64.efi.stub
    compressed/<sha256>.<ext>  zstd/xz/squashfs outputs keyed by their input
    layers/<diff_id>.json      gzip layer index; the blob itself is in blobs/
    blobs/sha256/<hex>         gzip layer blobs
    tmp/                       scratch for extraction; removed after each step
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "image-factory-demo"


class CacheDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in (self.debs, self.boot, self.compressed, self.layers, self.blobs, self.tmp):
            sub.mkdir(parents=True, exist_ok=True)

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def boot(self) -> Path:
        return self.root / "boot"

    @property
    def compressed(self) -> Path:
        return self.root / "compressed"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def kernel_dir(self, kver: str) -> Path:
        return self.root / "kernel" / kver

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def scratch(self) -> tempfile.TemporaryDirectory[str]:
        """A private scratch directory under tmp/ (same filesystem, so renames are atomic)."""
        return tempfile.TemporaryDirectory(dir=self.tmp)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Never leave half a file: a crash mid-write leaves only a `.partial` behind."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
