"""System extension trees: unpack, load, validate (imager spec §1.3, §1.7, §4.2 steps 2-4).

Unpacking follows Talos `archiver.Untar` after flattening the image: paths are cleaned and confined to
the destination, directories get `mode|0700`, symlinks are created as-is, and every other entry type
is written as a regular file with the header's mode; ownership is dropped and the
`SCHILY.xattr.security.selinux` PAX value of each entry is recorded (not set on disk) for §4.3.
Layers are applied bottom-up with OCI whiteouts: `.wh.<name>` deletes `<name>` from lower layers and
`.wh..wh..opq` empties its directory of lower-layer content.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from services.builder.assets.extension_manifest import MANIFEST_VERSION, Manifest, parse_manifest
from services.builder.assets.version_constraint import check_constraint
from services.builder.steps.initramfs_codec import ZSTD_MAGIC, decompress_file
from services.builder.steps.squashfs import SELINUX_PAX
from services.shared.errors import InvalidArgument

logger = logging.getLogger(__name__)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
Labels = dict[str, str]  # path relative to the extension directory → SELinux label


@dataclass(frozen=True)
class ExtensionDir:
    """An already flattened extension tree on disk (copied; no labels: PAX records are gone)."""

    path: Path


@dataclass(frozen=True)
class ExtensionLayers:
    """OCI layer blobs (tar, tar+gzip or tar+zstd), bottom layer first."""

    layers: tuple[Path, ...]


@dataclass(frozen=True)
class ExtensionTarball:
    """`tarballPath` (§1.7): a plain filesystem tar, e.g. a virtual extension; no whiteout handling."""

    path: Path


ExtensionSource = ExtensionDir | ExtensionLayers | ExtensionTarball


@dataclass(frozen=True)
class Extension:
    """A loaded extension: `directory` names its squashfs (`<directory>.sqsh`)."""

    directory: str
    rootfs: Path
    manifest: Manifest


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # close to Go's %q for the names we see


# --- unpacking -----------------------------------------------------------------------------------


async def unpack_extension(source: ExtensionSource, dest: Path, scratch: Path) -> Labels:
    """§4.2 step 2: `source` → `dest` (created); returns the SELinux labels seen in tar headers."""
    labels: Labels = {}
    if isinstance(source, ExtensionDir):
        await asyncio.to_thread(shutil.copytree, source.path, dest, symlinks=True)
        return labels
    await asyncio.to_thread(dest.mkdir, parents=True)
    if isinstance(source, ExtensionTarball):
        await asyncio.to_thread(apply_tar, source.path, dest, labels, whiteouts=False)
        return labels
    for index, layer in enumerate(source.layers):
        with layer.open("rb") as f:
            zstd = f.read(len(ZSTD_MAGIC)) == ZSTD_MAGIC
        if zstd:  # tarfile reads gzip itself, not zstd
            await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
            plain = scratch / f"layer-{index}.tar"
            await decompress_file(layer, plain)
            layer = plain
        await asyncio.to_thread(apply_tar, layer, dest, labels, whiteouts=True)
    return labels


def _clean(name: str) -> str:
    # Talos safepath.CleanPath: clean as if rooted at "/", so ".." cannot climb out, then drop the "/".
    return posixpath.normpath("/" + name).lstrip("/")


def _resolve(dest: Path, rel: str, *, create: bool) -> Path | None:
    """`dest/rel` with its parent directories resolved inside `dest` (Go's os.Root refuses to leave
    it). Missing parents are created 0700 when `create` (Go `MkdirAll(dir, 0o700)`), else None."""
    root = dest.resolve()
    current = root
    dirname = posixpath.dirname(rel)
    for part in dirname.split("/") if dirname else ():
        current = current / part
        if current.is_symlink():
            current = current.resolve()
            if not current.is_relative_to(root):
                raise InvalidArgument(f"extension entry {_quote(rel)} escapes the extension directory")
        if not current.exists():  # not a symlink here: resolved above
            if not create:
                return None
            current.mkdir()
            current.chmod(0o700)  # explicit: not left to the umask
        elif not current.is_dir():
            raise InvalidArgument(f"extension entry {_quote(rel)}: {_quote(part)} is not a directory")
    return current / posixpath.basename(rel)


def _remove(dest: Path, rel: str, labels: Labels) -> None:
    path = _resolve(dest, rel, create=False)
    if path is not None and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path is not None and (path.is_symlink() or path.exists()):
        path.unlink()
    for key in [k for k in labels if k == rel or k.startswith(rel + "/")]:
        del labels[key]


def apply_tar(tar_path: Path, dest: Path, labels: Labels, *, whiteouts: bool) -> None:
    """Apply one tar (layer) onto `dest`. Whiteouts are processed in a first pass so that they only
    remove lower-layer content, whatever their position in the layer."""
    if whiteouts:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                rel = _clean(member.name)
                base, dirname = posixpath.basename(rel), posixpath.dirname(rel)
                if base == OPAQUE:
                    target = _resolve(dest, dirname, create=False) if dirname else dest
                    if target is not None and target.is_dir() and not target.is_symlink():
                        for child in sorted(entry.name for entry in target.iterdir()):
                            _remove(dest, posixpath.join(dirname, child), labels)
                elif base.startswith(WHITEOUT):
                    _remove(dest, posixpath.join(dirname, base[len(WHITEOUT) :]), labels)
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            rel = _clean(member.name)
            if not rel or (whiteouts and posixpath.basename(rel).startswith(WHITEOUT)):
                continue  # the root itself ("./") has nothing to create
            _extract(tar, member, rel, dest, labels)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str, dest: Path, labels: Labels) -> None:
    path = _resolve(dest, rel, create=True)
    assert path is not None  # created above
    if member.isdir():
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            _remove(dest, rel, labels)
        path.mkdir(exist_ok=True)
        path.chmod((member.mode & 0o777) | 0o700)  # Go: FileInfo().Mode() & ModePerm | 0700
    else:
        content = b""
        if member.isreg():
            extracted = tar.extractfile(member)
            content = extracted.read() if extracted is not None else b""
        elif member.islnk():
            # Go writes the (empty) hard-link entry as an empty file; we copy what it points to.
            target = dest / _clean(member.linkname)
            if target.is_file() and not target.is_symlink():
                content = target.read_bytes()
        if path.is_symlink() or path.exists():
            _remove(dest, rel, labels)
        if member.issym():
            path.symlink_to(member.linkname)
        else:
            path.write_bytes(content)
            path.chmod(member.mode & 0o7777)
    if label := member.pax_headers.get(SELINUX_PAX):
        labels[rel] = label
    else:
        labels.pop(rel, None)


# --- loading and validation ----------------------------------------------------------------------


def load_extension(path: Path) -> Extension:
    """Talos `extensions.Load`: exactly `manifest.yaml` and `rootfs`, manifest version `v1alpha1`."""
    manifest: Manifest | None = None
    rootfs: Path | None = None
    for name in sorted(entry.name for entry in path.iterdir()):
        if name == "manifest.yaml":
            manifest = parse_manifest((path / name).read_bytes())
            if manifest.version != MANIFEST_VERSION:
                raise InvalidArgument(f"unsupported manifest version: {_quote(manifest.version)}")
        elif name == "rootfs":
            rootfs = path / name
        else:
            raise InvalidArgument(f"unexpected file {_quote(name)}")
    if manifest is None or manifest == Manifest():
        raise InvalidArgument("extension manifest is missing")
    if rootfs is None:
        raise InvalidArgument("extension rootfs is missing")
    return Extension(path.name, rootfs, manifest)


def list_extensions(root: Path) -> list[Extension]:
    """§4.2 step 3: entries sorted by name *as strings* (`0, 1, 10, 11, 2`, as upstream)."""
    extensions = []
    for name in sorted(entry.name for entry in root.iterdir()):
        if not (root / name).is_dir():
            raise InvalidArgument(f"unexpected non-directory entry: {_quote(name)}")
        try:
            extensions.append(load_extension(root / name))
        except InvalidArgument as exc:
            raise InvalidArgument(f"error loading extension {name}: {exc.message}") from None
    return extensions


def validate_constraints(extensions: list[Extension], talos_version: str) -> None:
    """§4.2 step 4 (constraints only, as the imager does)."""
    for ext in extensions:
        logger.info("extension %s %s (%s)", ext.manifest.metadata.name, ext.manifest.metadata.version, ext.directory)
    for ext in extensions:
        try:
            check_constraint(ext.manifest.metadata.compatibility, talos_version)
        except InvalidArgument as exc:
            name = _quote(ext.manifest.metadata.name)
            raise InvalidArgument(f"error validating extension {name}: {exc.message}") from None
