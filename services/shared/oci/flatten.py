"""Flatten an image's layers into a directory, as `crane export` does (spec §7.2 step 4).

Layers are applied in order; OCI whiteouts (`.wh.<name>` deletes a path, `.wh..wh..opq` empties a
directory) are honoured. Only directories, regular files and symlinks are materialized; device nodes
and the like are skipped (nothing we extract needs them). Paths are confined to the destination:
absolute names, `..` and links pointing outside are refused rather than followed.

Every blob is streamed from the registry, checked against its digest, and spooled to disk before it is
unpacked, so a tampered layer never reaches the destination.
"""

from __future__ import annotations

import asyncio
import shutil
import tarfile
import uuid
from pathlib import Path, PurePosixPath

from services.shared.errors import VerificationFailed
from services.shared.oci.client import RegistryClient
from services.shared.oci.manifest import Manifest

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def _safe_relative(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name.lstrip("/"))
    if not path.parts or any(part in ("..", "") for part in path.parts) or path.parts == (".",):
        return None
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def apply_layer(tar_path: Path, dest: Path) -> None:
    """Apply one (optionally gzip-compressed) layer tar onto `dest`. Blocking."""
    root = dest.resolve()
    with tarfile.open(tar_path, mode="r:*") as archive:
        for member in archive:
            rel = _safe_relative(member.name)
            if rel is None:
                continue
            target = dest / rel
            # A parent that is a symlink could redirect writes outside `dest`.
            if not target.parent.resolve().is_relative_to(root):
                raise VerificationFailed(f"layer entry {member.name!r} escapes the image root")
            if rel.name == OPAQUE:
                if target.parent.is_dir():
                    for child in target.parent.iterdir():
                        _remove(child)
                continue
            if rel.name.startswith(WHITEOUT):
                _remove(target.parent / rel.name[len(WHITEOUT) :])
                continue
            if member.isdir():
                if target.exists() and not target.is_dir():
                    _remove(target)
                target.mkdir(parents=True, exist_ok=True)
                target.chmod((member.mode & 0o7777) | 0o700)
            elif member.isreg():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    _remove(target)
                source = archive.extractfile(member)
                assert source is not None
                with target.open("wb") as handle:
                    shutil.copyfileobj(source, handle, 1024 * 1024)
                target.chmod(member.mode & 0o7777)
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    _remove(target)
                target.symlink_to(member.linkname)
            elif member.islnk():
                link = _safe_relative(member.linkname)
                if link is not None and (dest / link).is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists() or target.is_symlink():
                        _remove(target)
                    shutil.copy2(dest / link, target)


async def flatten_image(client: RegistryClient, repo: str, manifest: Manifest, dest: Path) -> None:
    """Download and apply every layer of `manifest` into `dest`, which appears only when complete."""
    staging = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.partial")
    await asyncio.to_thread(staging.mkdir, parents=True)
    try:
        for layer in manifest.layers():
            blob = staging.with_name(f"{staging.name}.layer")
            handle = await asyncio.to_thread(blob.open, "wb")
            try:
                async with client.open_blob(repo, layer.digest) as reader:
                    async for chunk in reader:
                        await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)
            try:
                await asyncio.to_thread(apply_layer, blob, staging)
            finally:
                blob.unlink(missing_ok=True)
        try:
            await asyncio.to_thread(staging.rename, dest)
        except OSError:
            if not await asyncio.to_thread(dest.is_dir):
                raise
            await asyncio.to_thread(shutil.rmtree, staging, True)  # someone else finished first
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise
