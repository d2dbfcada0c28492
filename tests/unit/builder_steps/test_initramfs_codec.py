"""zstd/xz for initramfs segments (imager spec §4.5 step 1, §4.7 step 2): argv and magic detection."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from services.builder.steps import initramfs_codec as codec
from services.shared.errors import InvalidArgument
from tests.unit.builder_steps.conftest import FakeTools


def test_zstd_argv() -> None:
    assert codec.zstd_compress_argv(Path("/w/extensions.cpio")) == [
        "zstd", "-T0", "-18", "-c", "--quiet", "/w/extensions.cpio",
    ]  # fmt: skip
    assert codec.zstd_decompress_argv(Path("/w/initramfs.xz")) == ["zstd", "-d", "-c", "--quiet", "/w/initramfs.xz"]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xfd7zXZ\x00\x00\x01", "xz"),
        (b"\x28\xb5\x2f\xfd\x04\x00", "zstd"),
        (b"070701000000", "none"),
    ],
)
def test_detect(head: bytes, kind: str) -> None:
    assert codec.detect(head) == kind


def test_detect_rejects_unknown() -> None:
    with pytest.raises(InvalidArgument, match="neither xz nor zstd"):
        codec.detect(b"\x1f\x8b\x08\x00")


async def test_zstd_goes_through_run_tool(tmp_path: Path, fake_tools: FakeTools) -> None:
    src, dst = tmp_path / "a.cpio", tmp_path / "a.cpio.zst"
    src.write_bytes(b"x")
    await codec.compress_file(src, dst, "zstd")
    assert fake_tools.argvs() == [["zstd", "-T0", "-18", "-c", "--quiet", str(src)]]
    assert fake_tools.calls[0].stdout_path == dst

    packed = tmp_path / "in.zst"
    packed.write_bytes(codec.ZSTD_MAGIC + b"frame")
    await codec.decompress_file(packed, tmp_path / "out")
    assert fake_tools.argvs()[1] == ["zstd", "-d", "-c", "--quiet", str(packed)]


async def test_xz_in_process_crc32_preset0e(tmp_path: Path, fake_tools: FakeTools) -> None:
    src, dst, back = tmp_path / "a", tmp_path / "a.xz", tmp_path / "b"
    payload = b"cpio" * 10000
    src.write_bytes(payload)
    await codec.compress_file(src, dst, "xz")
    data = dst.read_bytes()
    assert data.startswith(codec.XZ_MAGIC)
    assert data[7] == lzma.CHECK_CRC32  # stream flags: check type (the kernel wants CRC32)
    assert data == lzma.compress(payload, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0 | lzma.PRESET_EXTREME)
    # Concatenated streams decode as one, like `xz -d`.
    dst.write_bytes(data + data)
    await codec.decompress_file(dst, back)
    assert back.read_bytes() == payload + payload
    assert fake_tools.calls == []


async def test_uncompressed_cpio_is_copied(tmp_path: Path, fake_tools: FakeTools) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"070701rest")
    await codec.decompress_file(src, dst)
    assert dst.read_bytes() == b"070701rest"
    assert fake_tools.calls == []
