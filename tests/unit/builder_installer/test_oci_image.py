"""Deterministic OCI pieces (steps/oci_image.py): layers, config, manifest, layout reading (imager §9)."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from services.builder.steps.oci_image import (
    REF_NAME,
    Blob,
    OciLayout,
    TarEntry,
    image_config,
    image_manifest,
    resolve_image,
    rfc3339,
    sorted_entries,
    write_layer,
)
from services.shared.errors import VerificationFailed
from services.shared.oci import Descriptor, Platform
from services.shared.oci import media_types as mt
from tests.unit.builder_installer.fakes import make_base_layout, read_layer

EPOCH = 1559424892
AMD64 = Platform("linux", "amd64")


def _entries(tmp_path: Path) -> list[TarEntry]:
    (tmp_path / "src").mkdir(exist_ok=True)
    big = tmp_path / "src" / "big"
    big.write_bytes(bytes(range(256)) * 4096)
    return [
        TarEntry.file("usr/install/amd64/vmlinuz.efi", big),
        TarEntry.inline("b/é-file", b"unicode", 0o600),
        TarEntry.directory("a", 0o700),
        TarEntry.symlink("a/link", "../b"),
        TarEntry.inline("B", b"upper"),
    ]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_layer_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    one = write_layer(OciLayout.create(tmp_path / "one"), entries, mtime=EPOCH)
    two = write_layer(OciLayout.create(tmp_path / "two"), list(reversed(entries)), mtime=EPOCH)
    assert one.path.read_bytes() == two.path.read_bytes()
    assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
    other = write_layer(OciLayout.create(tmp_path / "three"), entries, mtime=EPOCH + 1)
    assert other.digest != one.digest


def test_layer_digest_diff_id_and_descriptor(tmp_path: Path) -> None:
    layer = write_layer(OciLayout.create(tmp_path / "l"), _entries(tmp_path), mtime=EPOCH)
    blob = layer.path.read_bytes()
    assert layer.path == tmp_path / "l" / "blobs" / "sha256" / layer.digest.split(":")[1]
    assert layer.descriptor == Descriptor(mt.OCI_LAYER_GZIP, _sha(blob), len(blob))
    assert layer.diff_id == _sha(gzip.decompress(blob))
    # gzip header: no FNAME/FEXTRA flags, mtime 0 (RFC 1952 §2.3).
    assert blob[:4] == b"\x1f\x8b\x08\x00" and blob[4:8] == b"\0\0\0\0"
    assert not list((tmp_path / "l" / "blobs" / "sha256").glob("*.partial"))


def test_layer_members_are_sorted_and_owned_by_root(tmp_path: Path) -> None:
    layer = write_layer(OciLayout.create(tmp_path / "l"), _entries(tmp_path), mtime=EPOCH)
    members = read_layer(layer.path)
    assert [m.name for m in members] == ["B", "a", "a/link", "b/é-file", "usr/install/amd64/vmlinuz.efi"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", EPOCH)}
    by_name = {m.name: m for m in members}
    assert by_name["a"].isdir() and by_name["a"].mode == 0o700
    assert by_name["a/link"].issym() and by_name["a/link"].linkname == "../b"
    assert by_name["b/é-file"].mode == 0o600
    assert by_name["usr/install/amd64/vmlinuz.efi"].size == 256 * 4096
    with tarfile.open(layer.path, "r:gz") as tar:
        assert tar.pax_headers == {}  # nothing that needs PAX globally


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TarEntry.inline("/abs", b""), "relative"),
        (lambda: TarEntry.inline("a/../b", b""), "relative"),
        (lambda: TarEntry.inline("a/", b""), "relative"),
        (lambda: TarEntry.inline("", b""), "relative"),
        (lambda: TarEntry("f"), "exactly one of source and data"),
        (lambda: TarEntry("f", data=b"", source=Path("/x")), "exactly one of source and data"),
        (lambda: sorted_entries([TarEntry.inline("f", b""), TarEntry.directory("f")]), "duplicate"),
    ],
)
def test_bad_entries(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_image_config_fields() -> None:
    config = json.loads(
        image_config(
            arch="arm64",
            container_config={"Entrypoint": ["/bin/installer"], "Env": ["A=1"]},
            diff_ids=["sha256:" + "1" * 64, "sha256:" + "2" * 64],
            history=[{"created_by": "a"}, {"created_by": "env", "empty_layer": True}, {"created_by": "b"}],
            created=EPOCH,
        )
    )
    assert config == {
        "architecture": "arm64",
        "os": "linux",
        "created": "2019-06-01T21:34:52Z",
        "config": {"Entrypoint": ["/bin/installer"], "Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
        "history": [{"created_by": "a"}, {"created_by": "env", "empty_layer": True}, {"created_by": "b"}],
    }


def test_image_config_refuses_history_not_matching_layers() -> None:
    with pytest.raises(ValueError, match="history"):
        image_config(arch="amd64", container_config={}, diff_ids=["sha256:" + "1" * 64], history=[], created=0)


def test_image_manifest_shape() -> None:
    config = Descriptor(mt.OCI_CONFIG, "sha256:" + "c" * 64, 10)
    layer = Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + "d" * 64, 20)
    data = image_manifest(config, [layer])
    assert json.loads(data) == {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "c" * 64, "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "d" * 64, "size": 20}],
    }
    assert b" " not in data and data == image_manifest(config, [layer])


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(EPOCH) == "2019-06-01T21:34:52Z"


def test_layout_create_and_put(tmp_path: Path) -> None:
    layout = OciLayout.create(tmp_path / "lay")
    assert json.loads((tmp_path / "lay" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blob = layout.put_bytes(b"{}", mt.OCI_CONFIG)
    assert blob.path.read_bytes() == b"{}" and blob.digest == _sha(b"{}")
    assert layout.read_blob(blob.descriptor) == b"{}"
    OciLayout.create(tmp_path / "lay")  # idempotent
    assert layout.read_blob(blob.descriptor) == b"{}"


def test_adopt_links_and_verifies(tmp_path: Path) -> None:
    src = OciLayout.create(tmp_path / "src").put_bytes(b"payload", mt.OCI_LAYER_GZIP)
    dst = OciLayout.create(tmp_path / "dst")
    adopted = dst.adopt(Blob(src.descriptor, src.path, "sha256:" + "0" * 64), mt.OCI_LAYER)
    assert adopted.path == dst.blob_path(src.digest) and adopted.path.read_bytes() == b"payload"
    assert adopted.descriptor.media_type == mt.OCI_LAYER and adopted.diff_id == "sha256:" + "0" * 64
    src.path.chmod(0o644)
    src.path.write_bytes(b"tampered")
    with pytest.raises(VerificationFailed):
        OciLayout.create(tmp_path / "dst2").adopt(src)


def test_resolve_image_from_manifest_and_nested_index(tmp_path: Path) -> None:
    plain = make_base_layout(tmp_path / "plain")
    nested = make_base_layout(tmp_path / "nested", nested_index=True)
    one = resolve_image(OciLayout(plain.layout), AMD64)
    two = resolve_image(OciLayout(nested.layout), AMD64)
    assert one.digest == two.digest
    assert [d.digest for d in two.layers()] == nested.layer_digests
    with pytest.raises(Exception, match="no linux/arm64 manifest"):
        resolve_image(OciLayout(nested.layout), Platform("linux", "arm64"))


def test_resolve_image_ref_name_and_ambiguity(tmp_path: Path) -> None:
    base = make_base_layout(tmp_path / "b")
    layout = OciLayout(base.layout)
    assert resolve_image(layout, AMD64, "v1.10.0").media_type == mt.OCI_MANIFEST
    with pytest.raises(VerificationFailed, match="0 candidate"):
        resolve_image(layout, AMD64, "v9")
    entry = layout.index_entries()[0]
    layout.write_index([entry, Descriptor(entry.media_type, entry.digest, entry.size, annotations={REF_NAME: "x"})])
    with pytest.raises(VerificationFailed, match="2 candidate"):
        resolve_image(layout, AMD64)


def test_resolve_image_refuses_tampered_blobs(tmp_path: Path) -> None:
    base = make_base_layout(tmp_path / "b")
    layout = OciLayout(base.layout)
    entry = layout.index_entries()[0]
    layout.blob_path(entry.digest).write_bytes(b"{}")
    with pytest.raises(VerificationFailed, match="does not match"):
        resolve_image(layout, AMD64)
