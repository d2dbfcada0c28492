"""Unpacking, loading and validating extension trees (imager spec §1.3, §1.7, §4.2 steps 2-4)."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
from pathlib import Path

import pytest

from services.builder.assets.extensions import (
    Extension,
    ExtensionDir,
    ExtensionLayers,
    ExtensionTarball,
    list_extensions,
    load_extension,
    unpack_extension,
    validate_constraints,
)
from services.builder.steps.initramfs_codec import ZSTD_MAGIC
from services.builder.steps.squashfs import SELINUX_PAX
from services.shared.errors import InvalidArgument
from tests.unit.builder_steps.conftest import FakeTools

LABEL = "system_u:object_r:system_state_t:s0"
MANIFEST = b"version: v1alpha1\nmetadata:\n  name: demo\n  version: 1.0.0\n"

Entry = tuple[str, bytes, int, bytes]  # name, tar type, mode, data (or link target)


def _tar(entries: list[Entry], labels: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, data in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
                data = b""
            info.size = len(data)
            if labels and name in labels:
                info.pax_headers = {SELINUX_PAX: labels[name]}
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _file(path: str, data: bytes = b"x", mode: int = 0o644) -> Entry:
    return (path, tarfile.REGTYPE, mode, data)


def _dir(path: str, mode: int = 0o755) -> Entry:
    return (path, tarfile.DIRTYPE, mode, b"")


async def test_layers_with_whiteouts_and_labels(tmp_path: Path) -> None:
    lower = tmp_path / "lower.tar.gz"
    lower.write_bytes(
        gzip.compress(
            _tar(
                [
                    _file("manifest.yaml", MANIFEST),
                    _dir("rootfs/usr/local/opq"),
                    _file("rootfs/usr/local/a"),
                    _file("rootfs/usr/local/labelled"),
                    _file("rootfs/usr/local/dir/x"),
                    _file("rootfs/usr/local/opq/old"),
                ],
                {"rootfs/usr/local/labelled": LABEL, "rootfs/usr/local/dir/x": LABEL},
            )
        )
    )
    upper = tmp_path / "upper.tar"
    upper.write_bytes(
        _tar(
            [
                _file("rootfs/usr/local/opq/new"),  # same layer, before the marker: kept
                ("rootfs/usr/local/opq/.wh..wh..opq", tarfile.REGTYPE, 0o644, b""),
                ("rootfs/usr/local/.wh.labelled", tarfile.REGTYPE, 0o644, b""),
                _file("rootfs/usr/local/dir", b"now a file"),  # replaces a directory
                _file("rootfs/usr/local/b"),
            ],
            {"rootfs/usr/local/b": LABEL},
        )
    )
    dest = tmp_path / "ext"
    labels = await unpack_extension(ExtensionLayers((lower, upper)), dest, tmp_path / "scratch")
    local = dest / "rootfs/usr/local"
    assert sorted(p.name for p in local.iterdir()) == ["a", "b", "dir", "opq"]
    assert sorted(p.name for p in (local / "opq").iterdir()) == ["new"]
    assert (local / "dir").read_bytes() == b"now a file"
    assert labels == {"rootfs/usr/local/b": LABEL}
    assert not any(".wh." in p.name for p in dest.rglob("*"))


async def test_zstd_layer_is_decompressed_first(tmp_path: Path, fake_tools: FakeTools) -> None:
    plain = _tar([_file("manifest.yaml", MANIFEST), _dir("rootfs")])
    layer = tmp_path / "layer"
    layer.write_bytes(ZSTD_MAGIC + b"compressed")
    fake_tools.handlers["zstd"] = lambda _argv, _stdin, out: out.write_bytes(plain) if out else None
    await unpack_extension(ExtensionLayers((layer,)), tmp_path / "ext", tmp_path / "scratch")
    assert fake_tools.argvs() == [["zstd", "-d", "-c", "--quiet", str(layer)]]
    assert fake_tools.calls[0].stdout_path == tmp_path / "scratch/layer-0.tar"
    assert (tmp_path / "ext/manifest.yaml").read_bytes() == MANIFEST


async def test_untar_rules(tmp_path: Path) -> None:
    tarball = tmp_path / "ext.tar"
    tarball.write_bytes(
        _tar(
            [
                _dir("rootfs/ro", 0o555),
                _file("rootfs/usr/bin/suid", b"#!", 0o4755),
                ("rootfs/usr/bin/link", tarfile.SYMTYPE, 0o777, b"suid"),
                ("rootfs/usr/bin/hard", tarfile.LNKTYPE, 0o644, b"rootfs/usr/bin/suid"),
                ("rootfs/dev/null", tarfile.CHRTYPE, 0o666, b""),
                _file("../../outside", b"confined"),
                ("rootfs/.wh.kept", tarfile.REGTYPE, 0o644, b""),  # plain tarballs have no whiteouts
            ],
            {"rootfs/usr/bin/suid": LABEL},
        )
    )
    dest = tmp_path / "ext"
    labels = await unpack_extension(ExtensionTarball(tarball), dest, tmp_path / "scratch")
    assert stat.S_IMODE((dest / "rootfs/ro").stat().st_mode) == 0o755  # mode | 0700
    assert stat.S_IMODE((dest / "rootfs/usr").stat().st_mode) == 0o700  # implicit parent
    assert stat.S_IMODE((dest / "rootfs/usr/bin/suid").stat().st_mode) == 0o4755
    assert (dest / "rootfs/usr/bin/link").readlink() == Path("suid")
    assert (dest / "rootfs/usr/bin/hard").read_bytes() == b"#!"
    assert (dest / "rootfs/dev/null").is_file() and (dest / "rootfs/dev/null").stat().st_size == 0
    assert (dest / "outside").read_bytes() == b"confined"
    assert (dest / "rootfs/.wh.kept").is_file()
    assert labels == {"rootfs/usr/bin/suid": LABEL}


async def test_symlinked_parent_cannot_escape(tmp_path: Path) -> None:
    tarball = tmp_path / "evil.tar"
    tarball.write_bytes(_tar([("rootfs/up", tarfile.SYMTYPE, 0o777, b"../.."), _file("rootfs/up/pwned")]))
    with pytest.raises(InvalidArgument, match="escapes the extension directory"):
        await unpack_extension(ExtensionTarball(tarball), tmp_path / "ext", tmp_path / "scratch")
    assert not (tmp_path / "pwned").exists()


async def test_directory_source_is_copied(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "rootfs/usr/local").mkdir(parents=True)
    (src / "manifest.yaml").write_bytes(MANIFEST)
    (src / "rootfs/usr/local/l").symlink_to("/nowhere")
    labels = await unpack_extension(ExtensionDir(src), tmp_path / "ext", tmp_path / "scratch")
    assert labels == {}
    assert (tmp_path / "ext/rootfs/usr/local/l").readlink() == Path("/nowhere")


def _extension(root: Path, name: str, manifest: bytes = MANIFEST) -> Path:
    (root / name / "rootfs").mkdir(parents=True)
    (root / name / "manifest.yaml").write_bytes(manifest)
    return root / name


def test_list_sorts_names_as_strings(tmp_path: Path) -> None:
    for j in range(12):
        _extension(tmp_path, str(j))
    assert [e.directory for e in list_extensions(tmp_path)] == [
        "0", "1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"manifest.yaml": MANIFEST, "rootfs/": b"", "extra": b""}, 'unexpected file "extra"'),
        ({"rootfs/": b""}, "extension manifest is missing"),
        ({"manifest.yaml": MANIFEST}, "extension rootfs is missing"),
        ({"manifest.yaml": b"version: v1\n", "rootfs/": b""}, 'unsupported manifest version: "v1"'),
        ({"manifest.yaml": b"metadata: {}\n", "rootfs/": b""}, 'unsupported manifest version: ""'),
        ({"manifest.yaml": b"", "rootfs/": b""}, "EOF"),
    ],
)
def test_load_errors(tmp_path: Path, layout: dict[str, bytes], message: str) -> None:
    ext = tmp_path / "3"
    ext.mkdir()
    for name, data in layout.items():
        if name.endswith("/"):
            (ext / name).mkdir()
        else:
            (ext / name).write_bytes(data)
    with pytest.raises(InvalidArgument) as err:
        load_extension(ext)
    assert err.value.message == message
    with pytest.raises(InvalidArgument) as err:
        list_extensions(tmp_path)
    assert err.value.message == f"error loading extension 3: {message}"


def test_list_rejects_files(tmp_path: Path) -> None:
    _extension(tmp_path, "0")
    (tmp_path / "1").write_bytes(b"")
    with pytest.raises(InvalidArgument, match=r'^unexpected non-directory entry: "1"$'):
        list_extensions(tmp_path)


def test_load_returns_manifest(tmp_path: Path) -> None:
    ext = load_extension(_extension(tmp_path, "0"))
    assert ext.directory == "0" and ext.rootfs == tmp_path / "0/rootfs"
    assert ext.manifest.metadata.name == "demo" and ext.manifest.metadata.version == "1.0.0"


def test_validate_wraps_constraint_error(tmp_path: Path) -> None:
    manifest = MANIFEST + b"  compatibility:\n    talos:\n      version: '>= v1.12.0'\n"
    exts: list[Extension] = [load_extension(_extension(tmp_path, "0", manifest))]
    validate_constraints(exts, "v1.12.0")
    with pytest.raises(InvalidArgument) as err:
        validate_constraints(exts, "v1.11.2")
    assert err.value.message == (
        'error validating extension "demo": version constraint >= v1.12.0 can\'t be satisfied with Talos version 1.11.2'
    )
