"""Docker `save`-style archives: the `installer-<arch>.tar` download (imager §9 step 6, factory §9.3, §15).

Same shape as go-containerregistry's `tarball.Write`, which Talos' `outInstaller` calls: the config blob
named `sha256:<hex>`, each layer as `<hex>.tar.gz` (the compressed blob, once per archive even when shared),
then `manifest.json` = `[{"Config":…,"RepoTags":[…]|null,"Layers":[…]}]` sorted by the joined tags. Members
are regular files, mode 0644, uid/gid 0 and one fixed mtime, so the same images give the same bytes.
`docker load`, `crane.Load` and `skopeo copy docker-archive:` accept compressed layers.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.builder.steps.oci_image import Blob
from services.shared.oci import parse_reference


@dataclass(frozen=True)
class ArchiveImage:
    """One image of the archive. `repo_tags=None` writes `"RepoTags":null` (an untagged image)."""

    config: Blob
    layers: tuple[Blob, ...]
    repo_tags: tuple[str, ...] | None


def repo_tags(reference: str) -> tuple[str, ...] | None:
    """`RepoTags` for an image reference, as `tarball.Write` derives them from a `name.Reference`.

    A digest reference (`…@sha256:…`) gives no tag at all; a tag reference is kept as written, with
    `:latest` appended when it names no tag (Docker cannot load an archive entry without one).
    """
    parsed = parse_reference(reference)  # raises InvalidArgument for a malformed reference
    if parsed.digest is not None:
        return None
    return (reference,) if parsed.tag is not None else (f"{reference}:latest",)


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def archive_manifest(images: Sequence[ArchiveImage]) -> bytes:
    ordered = sorted(images, key=lambda image: ",".join(image.repo_tags or ()))  # tarball.Write order; ties keep ours
    entries = [
        {
            "Config": image.config.digest,
            "RepoTags": list(image.repo_tags) if image.repo_tags is not None else None,
            "Layers": [f"{_hex(layer.digest)}.tar.gz" for layer in image.layers],
        }
        for image in ordered
    ]
    return json.dumps(entries, separators=(",", ":")).encode()


def _add_file(tar: tarfile.TarFile, name: str, path: Path, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, mtime, 0, 0, "", ""
    with path.open("rb") as handle:
        info.size = os.fstat(handle.fileno()).st_size
        tar.addfile(info, handle)


def write_docker_archive(images: Sequence[ArchiveImage], out: Path, *, mtime: int) -> Path:
    """Write the archive to `out` via `out.partial` (fsynced, renamed). Blocking: run it in a thread."""
    if not images:
        raise ValueError("a docker archive needs at least one image")
    manifest = archive_manifest(images)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                written: set[str] = set()
                for image in images:
                    _add_file(tar, image.config.digest, image.config.path, mtime)
                    for layer in image.layers:
                        name = f"{_hex(layer.digest)}.tar.gz"
                        if name not in written:
                            written.add(name)
                            _add_file(tar, name, layer.path, mtime)
                info = tarfile.TarInfo("manifest.json")
                info.mode, info.mtime, info.size, info.uname, info.gname = 0o644, mtime, len(manifest), "", ""
                tar.addfile(info, io.BytesIO(manifest))
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out
