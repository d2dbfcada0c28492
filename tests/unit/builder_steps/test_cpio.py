"""newc writer/reader (imager spec §4.7 format, §12 segment parsing)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from services.builder.steps import cpio
from services.shared.errors import InvalidArgument

EPOCH = 1559424892


def _tree(root: Path) -> list[str]:
    (root / "kernel/x86").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "kernel/x86/a.bin").write_bytes(b"abc")
    (root / "z.txt").write_bytes(b"hello world\n")
    (root / "link").symlink_to("z.txt")
    for d in ("kernel", "kernel/x86", "usr", "usr/lib"):
        (root / d).chmod(0o755)
    for f in ("kernel/x86/a.bin", "z.txt"):
        (root / f).chmod(0o644)
    return ["kernel", "kernel/x86", "kernel/x86/a.bin", "link", "usr", "usr/lib", "z.txt"]


def _archive(root: Path, names: list[str], mtime: int = EPOCH) -> bytes:
    buf = io.BytesIO()
    cpio.write_newc(buf, cpio.members_from_tree(root, names), mtime=mtime)
    return buf.getvalue()


def test_bytes_equal_gnu_cpio_reproducible(tmp_path: Path) -> None:
    # sha256 of `cpio -H newc --create --reproducible --quiet -R +0:+0` (GNU cpio 2.13) over the same
    # tree after `touch -h -d @1559424892` on every entry.
    data = _archive(tmp_path, _tree(tmp_path))
    assert len(data) == 1024
    assert hashlib.sha256(data).hexdigest() == "ced994876d8d06ee5d8d7200c836440760083313928dcce3051ad7f2f0c31b26"


def test_header_fields_and_padding(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "f").chmod(0o600)
    data = _archive(tmp_path, ["f"], mtime=0x5CF2EF7C)
    head = data[:110]
    assert head == b"070701" + b"".join(b"%08X" % v for v in (0, 0o100600, 0, 0, 1, 0x5CF2EF7C, 5, 0, 0, 0, 0, 2, 0))
    assert data[110:112] == b"f\0"  # 110 + 2 is 4-aligned: no name padding
    assert data[112:120] == b"12345\0\0\0"  # data padded to 4
    trailer = data[120:]
    assert trailer.startswith(b"070701" + b"%08X" % 0 + b"%08X" % 0)
    assert b"TRAILER!!!\0" in trailer
    assert len(data) % 512 == 0 and data.rstrip(b"\0").endswith(b"TRAILER!!!")


def test_round_trip(tmp_path: Path) -> None:
    names = _tree(tmp_path)
    entries = list(cpio.iter_newc(io.BytesIO(_archive(tmp_path, names))))
    assert [e.name for e in entries] == names
    assert [e.ino for e in entries] == list(range(len(names)))
    assert {(e.uid, e.gid, e.mtime) for e in entries} == {(0, 0, EPOCH)}
    by_name = {e.name: e for e in entries}
    assert by_name["kernel"].nlink == 3 and by_name["kernel/x86"].nlink == 2 and by_name["z.txt"].nlink == 1
    assert by_name["kernel/x86/a.bin"].data == b"abc"
    assert stat.S_ISLNK(by_name["link"].mode) and by_name["link"].data == b"z.txt"
    assert stat.S_IMODE(by_name["usr"].mode) == 0o755 and stat.S_ISDIR(by_name["usr"].mode)


def test_skipping_data(tmp_path: Path) -> None:
    names = _tree(tmp_path)
    entries = list(cpio.iter_newc(io.BytesIO(_archive(tmp_path, names)), load_data=False))
    assert {e.data for e in entries} == {b""}
    assert {e.name: e.size for e in entries}["z.txt"] == 12


def test_extract_member_across_concatenated_archives(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "init").write_bytes(b"#!/bin/sh\n")
    (src / "rootfs.sqsh").write_bytes(b"S" * 1000)
    first = _archive(src, ["init"])
    second = _archive(src, ["rootfs.sqsh"])
    dest = tmp_path / "out"
    assert cpio.extract_member(io.BytesIO(first + second), "rootfs.sqsh", dest)
    assert dest.read_bytes() == b"S" * 1000
    assert not cpio.extract_member(io.BytesIO(first), "rootfs.sqsh", tmp_path / "missing")


def test_prefix_length(tmp_path: Path) -> None:
    names = _tree(tmp_path)
    early = _archive(tmp_path, names[:3])
    assert cpio.newc_prefix_length(early + b"\x28\xb5\x2f\xfdrest") == len(early)
    assert cpio.newc_prefix_length(b"\x28\xb5\x2f\xfd") == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"070707" + b"0" * 104, "cpio: not a newc archive"),
        (b"0707010000000X" + b"0" * 96, "cpio: malformed header"),
        (b"070701" + b"0" * 10, "cpio: not a newc archive"),
        (b"", "cpio: archive has no trailer"),
    ],
)
def test_reader_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        list(cpio.iter_newc(io.BytesIO(data)))


def test_truncated_data(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    data = _archive(tmp_path, ["f"])
    with pytest.raises(InvalidArgument, match="truncated"):
        list(cpio.iter_newc(io.BytesIO(data[:150])))


def test_unsupported_file_type(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidArgument, match="unsupported file type"):
        cpio.members_from_tree(tmp_path, ["fifo"])
