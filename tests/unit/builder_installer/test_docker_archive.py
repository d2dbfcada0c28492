"""Docker `save`-style archives (steps/docker_archive.py; imager §9 step 6, factory §15)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from services.builder.assets.installer import InstallerSpec, build_installer_image, docker_archive
from services.builder.enums import Arch
from services.builder.steps.docker_archive import ArchiveImage, archive_manifest, repo_tags, write_docker_archive
from services.builder.steps.oci_image import Blob, OciLayout
from services.shared.errors import InvalidArgument
from services.shared.oci import media_types as mt
from tests.unit.builder_installer.fakes import boot_files, make_base_layout

EPOCH = 1559424892
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "tags"),
    [
        ("ghcr.io/siderolabs/installer-base:v1.10.0", ("ghcr.io/siderolabs/installer-base:v1.10.0",)),
        ("ghcr.io/siderolabs/installer", ("ghcr.io/siderolabs/installer:latest",)),
        ("localhost:5000/installer-base:v1.9.0", ("localhost:5000/installer-base:v1.9.0",)),
        (f"ghcr.io/siderolabs/installer-base:v1.10.0@{DIGEST}", None),
        (f"ghcr.io/siderolabs/installer-base@{DIGEST}", None),
    ],
)
def test_repo_tags(reference: str, tags: tuple[str, ...] | None) -> None:
    assert repo_tags(reference) == tags


@pytest.mark.parametrize("reference", ["Upper/Case:v1", "ghcr.io/x:bad tag", "ghcr.io/x@sha256:short"])
def test_repo_tags_refuses_bad_references(reference: str) -> None:
    with pytest.raises(InvalidArgument):
        repo_tags(reference)


def _image(layout: OciLayout, name: str, tags: tuple[str, ...] | None, shared: Blob) -> ArchiveImage:
    config = layout.put_bytes(json.dumps({"name": name}).encode(), mt.OCI_CONFIG)
    own = layout.put_bytes(f"layer of {name}".encode(), mt.OCI_LAYER_GZIP)
    return ArchiveImage(config, (shared, own), tags)


def test_archive_layout_and_manifest(tmp_path: Path) -> None:
    layout = OciLayout.create(tmp_path / "l")
    shared = layout.put_bytes(b"shared layer", mt.OCI_LAYER_GZIP)
    b = _image(layout, "b", ("reg/b:v1",), shared)
    a = _image(layout, "a", None, shared)
    out = write_docker_archive([b, a], tmp_path / "x.tar", mtime=EPOCH)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        stored = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    hexes = [layer.digest.split(":")[1] for layer in (shared, b.layers[1], a.layers[1])]
    assert names == [b.config.digest, f"{hexes[0]}.tar.gz", f"{hexes[1]}.tar.gz", a.config.digest,
                     f"{hexes[2]}.tar.gz", "manifest.json"]  # fmt: skip
    assert {(m.mode, m.uid, m.gid, m.mtime, m.type) for m in members} == {(0o644, 0, 0, EPOCH, tarfile.REGTYPE)}
    assert stored[f"{hexes[0]}.tar.gz"] == b"shared layer"
    assert stored[b.config.digest] == b.config.path.read_bytes()
    # Sorted by joined RepoTags: the untagged image ("") first.
    assert manifest == [
        {"Config": a.config.digest, "RepoTags": None, "Layers": [f"{hexes[0]}.tar.gz", f"{hexes[2]}.tar.gz"]},
        {"Config": b.config.digest, "RepoTags": ["reg/b:v1"], "Layers": [f"{hexes[0]}.tar.gz", f"{hexes[1]}.tar.gz"]},
    ]
    assert archive_manifest([b, a]) == json.dumps(manifest, separators=(",", ":")).encode()
    assert not (tmp_path / "x.tar.partial").exists()


def test_archive_needs_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one image"):
        write_docker_archive([], tmp_path / "x.tar", mtime=0)


async def test_installer_archive_is_reproducible(tmp_path: Path) -> None:
    make_base_layout(tmp_path / "base")
    files = boot_files(tmp_path / "files")
    spec = InstallerSpec(
        arch=Arch.AMD64,
        base=tmp_path / "base",
        image_ref=f"ghcr.io/siderolabs/installer-base:v1.10.0@{DIGEST}",
        source_date_epoch=EPOCH,
        use_sd_boot_for_uefi=True,
        uki=files["uki"],
        sd_boot=files["sd_boot"],
    )
    one = await docker_archive([await build_installer_image(spec, tmp_path / "a")], tmp_path / "one.tar")
    two = await docker_archive([await build_installer_image(spec, tmp_path / "b")], tmp_path / "two.tar")
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert entry["RepoTags"] is None and len(entry["Layers"]) == 2
