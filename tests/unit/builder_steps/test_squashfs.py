"""Extension squashfs step (imager spec §4.3): tar2sqfs argv, the PAX tar it reads, unsquashfs argv."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from services.builder.steps.squashfs import (
    SELINUX_PAX,
    SquashfsSpec,
    make_squashfs,
    pax_tar,
    tar2sqfs_argv,
    unsquash_path,
    unsquashfs_argv,
)
from tests.unit.builder_steps.conftest import FakeTools

LABEL = "system_u:object_r:system_state_t:s0"


@pytest.mark.parametrize(
    ("compression", "comp"),
    [
        ("zstd", ["-c", "zstd", "-X", "level=18"]),
        ("xz", ["-c", "xz", "-X", "dictsize=131072"]),
    ],
)
def test_tar2sqfs_argv(compression: str, comp: list[str]) -> None:
    spec = SquashfsSpec(compression=compression, mtime=1559424892)  # type: ignore[arg-type]
    assert tar2sqfs_argv(spec, Path("/s/0.sqsh")) == [
        "tar2sqfs", *comp,
        "-q", "-f", "-s",
        "-d", "uid=0,gid=0,mode=0755,mtime=1559424892",
        "/s/0.sqsh",
    ]  # fmt: skip


def test_unsquashfs_argv() -> None:
    assert unsquashfs_argv(Path("/t/rootfs.sqsh"), Path("/t/modules"), "/usr/lib/modules") == [
        "unsquashfs", "-no-xattrs", "-d", "/t/modules", "-f", "-n", "/t/rootfs.sqsh", "/usr/lib/modules",
    ]  # fmt: skip


def _rootfs(root: Path) -> None:
    (root / "usr/local/etc/talos").mkdir(parents=True)
    (root / "usr/local/etc/talos/config.yaml").write_bytes(b"cfg")
    (root / "usr/local/etc/talos/config.yaml").chmod(0o400)
    (root / "usr/local/bin").mkdir()
    (root / "usr/local/bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "usr/local/bin/tool").chmod(0o4755)
    (root / "usr/local/bin/alias").symlink_to("tool")
    (root / "usr/lib").mkdir()
    for d in ("usr", "usr/local", "usr/local/etc", "usr/local/etc/talos", "usr/local/bin", "usr/lib"):
        (root / d).chmod(0o755)


def test_pax_tar(tmp_path: Path) -> None:
    _rootfs(tmp_path)
    labels = {"usr/local/etc/talos/config.yaml": LABEL, "gone/file": "x"}
    with tarfile.open(fileobj=io.BytesIO(pax_tar(tmp_path, labels, 1559424892))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            ".",
            "usr",
            "usr/lib",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/alias",
            "usr/local/bin/tool",
            "usr/local/etc",
            "usr/local/etc/talos",
            "usr/local/etc/talos/config.yaml",
        ]
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1559424892)}
        by_name = {m.name: m for m in members}
        config = by_name["usr/local/etc/talos/config.yaml"]
        assert config.mode == 0o400 and config.pax_headers[SELINUX_PAX] == LABEL
        assert by_name["usr/local/bin/tool"].mode == 0o4755
        assert by_name["usr/local/bin/alias"].issym() and by_name["usr/local/bin/alias"].linkname == "tool"
        assert [m.name for m in members if SELINUX_PAX in m.pax_headers] == ["usr/local/etc/talos/config.yaml"]
        extracted = tar.extractfile(config)
        assert extracted is not None and extracted.read() == b"cfg"


def test_pax_tar_root_label(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(pax_tar(tmp_path, {"": LABEL}, 0))) as tar:
        (root,) = tar.getmembers()
        assert root.isdir() and root.pax_headers[SELINUX_PAX] == LABEL


async def test_make_squashfs(tmp_path: Path, fake_tools: FakeTools) -> None:
    _rootfs(tmp_path / "rootfs")
    out = tmp_path / "0.sqsh"
    fake_tools.handlers["tar2sqfs"] = lambda argv, stdin, _: Path(argv[-1]).write_bytes(stdin or b"")
    spec = SquashfsSpec(compression="zstd", mtime=42)
    await make_squashfs(tmp_path / "rootfs", out, spec, {"usr/local/etc/talos/config.yaml": LABEL})
    (call,) = fake_tools.calls
    assert call.argv == tar2sqfs_argv(spec, out)
    assert call.env_extra == {"SOURCE_DATE_EPOCH": "42"}
    assert call.stdin == pax_tar(tmp_path / "rootfs", {"usr/local/etc/talos/config.yaml": LABEL}, 42)
    assert out.stat().st_mode & 0o777 == 0o644


async def test_unsquash_path(fake_tools: FakeTools) -> None:
    await unsquash_path(Path("/r.sqsh"), Path("/d"), "/lib/modules")
    assert fake_tools.argvs() == [unsquashfs_argv(Path("/r.sqsh"), Path("/d"), "/lib/modules")]
