"""Native PE writer (imager spec §6.2), checked with our reader and with pefile as an independent one."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from services.builder.steps.pe import (
    APPENDED_CHARACTERISTICS,
    PeError,
    SectionSource,
    assemble_pe,
    parse_pe,
    plan_layout,
    read_pe,
    section_data,
)
from tests.unit.builder_uki_iso.helpers import StubSection, default_stub, make_stub, sections_of

EPOCH = 1559424892


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    path = tmp_path / "stub.efi"
    path.write_bytes(default_stub())
    return path


def _assemble(stub: Path, tmp_path: Path, sections: list[SectionSource]) -> Path:
    out = tmp_path / "out.efi"
    assemble_pe(stub, sections, out, timestamp=EPOCH)
    return out


def test_layout_follows_section_alignment_rules(stub: Path) -> None:
    layout = plan_layout(read_pe(stub), [(".osrel", 10), (".cmdline", 0x1000), (".linux", 0x1001)])
    appended = layout.sections[4:]
    # first VA: after the stub's last section (.sdmagic at 0x5000, 41 bytes), aligned to 0x1000
    assert [s.virtual_address for s in appended] == [0x6000, 0x7000, 0x8000]
    assert [s.virtual_size for s in appended] == [10, 0x1000, 0x1001]
    assert [s.raw_size for s in appended] == [0x200, 0x1000, 0x1200]
    assert all(s.characteristics == APPENDED_CHARACTERISTICS for s in appended)
    # raw data contiguous from SizeOfHeaders = align(0x80 + 20 + 240 + 40 * 7, 0x200)
    assert layout.size_of_headers == 0x400
    pointers = [s.raw_pointer for s in layout.sections]
    assert pointers[0] == 0x400
    assert all(
        b.raw_pointer == a.raw_pointer + a.raw_size
        for a, b in zip(layout.sections[:-1], layout.sections[1:], strict=True)
    )
    assert layout.size_of_image == 0xA000  # align(0x8000 + 0x1001, 0x1000)
    assert layout.size_of_code == 0x1400  # .text only (no INITIALIZED_DATA flag)
    assert layout.size_of_initialized_data == sum(s.raw_size for s in layout.sections[1:])


def test_headers_are_deterministic_and_fixed_up(stub: Path, tmp_path: Path) -> None:
    out = _assemble(stub, tmp_path, [SectionSource(".cmdline", data=b"console=ttyS0")])
    data = out.read_bytes()
    assert data[:2] == b"MZ"
    assert struct.unpack_from("<I", data, 0x3C)[0] == 0x80
    assert data[0x40:0x80] == bytes(0x40)  # DOS stub dropped
    assert data[0x80:0x84] == b"PE\0\0"
    pe = parse_pe(data)
    assert pe.timestamp == EPOCH
    assert pe.checksum == 0
    assert pe.linker_version == (0, 0)
    assert pe.symbols == 0  # the stub's COFF symbol table is not carried over
    assert pe.data_directory(5) == (0x1000, 12)  # data directories unchanged
    assert (
        out.read_bytes() == _assemble(stub, tmp_path, [SectionSource(".cmdline", data=b"console=ttyS0")]).read_bytes()
    )


def test_pefile_reads_the_same_sections(stub: Path, tmp_path: Path, pefile: Any) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bytes(range(256)) * 1000)
    sections = [
        SectionSource(".osrel", data=b"NAME=Talos\n"),
        SectionSource(".cmdline", data=b"console=ttyS0 talos.platform=metal"),
        SectionSource(".linux", path=kernel),
        SectionSource(".profile", data=b"ID=main"),
        SectionSource(".profile", data=b"ID=reset\nTITLE=Reset system disk"),
        SectionSource(".cmdline", data=b"console=ttyS0 talos.platform=metal talos.experimental.wipe=system"),
    ]
    out = _assemble(stub, tmp_path, sections)
    ours = read_pe(out)
    pe = pefile.PE(str(out))
    assert pe.OPTIONAL_HEADER.Magic == 0x20B
    theirs = [(s.Name.rstrip(b"\0").decode(), s.VirtualAddress, s.Misc_VirtualSize, s.SizeOfRawData, s.PointerToRawData)
              for s in pe.sections]  # fmt: skip
    assert theirs == [(s.name, s.virtual_address, s.virtual_size, s.raw_size, s.raw_pointer) for s in ours.sections]
    assert [s[0] for s in theirs] == [".text", ".data", ".sbat", ".sdmagic", *(s.name for s in sections)]
    assert pe.FILE_HEADER.TimeDateStamp == EPOCH
    assert pe.OPTIONAL_HEADER.CheckSum == 0
    assert pe.OPTIONAL_HEADER.SizeOfImage == ours.size_of_image
    for source, section in zip(sections, pe.sections[4:], strict=True):
        content = source.data if source.data is not None else kernel.read_bytes()
        assert section.get_data()[: section.Misc_VirtualSize] == content
    # stub sections are copied byte for byte
    stub_pe = pefile.PE(str(stub))
    for old, new in zip(stub_pe.sections, pe.sections, strict=False):
        assert old.get_data() == new.get_data()
    assert section_data(out, ours.section(".sbat")) == b"sbat,1,SBAT Version\n"


def test_debian_stub_round_trips(tmp_path: Path) -> None:
    """The real systemd-boot-efi stub (PE32+, COFF symbols, SectionAlignment 0x200) when installed."""
    stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    if not stub.is_file():
        pytest.skip("systemd-boot-efi is not installed")
    out = _assemble(stub, tmp_path, [SectionSource(".cmdline", data=b"x" * 700)])
    pe = read_pe(out)
    assert [s.name for s in pe.sections][-2:] == [".sdmagic", ".cmdline"]
    assert pe.sections[-1].virtual_address % pe.section_alignment == 0
    assert sections_of(out)[:-1] == sections_of(stub)
    assert sections_of(out)[-1] == (".cmdline", b"x" * 700)


def _broken(**kwargs: Any) -> bytes:
    return make_stub([StubSection(".text", 0x1000, b"\x90" * 16, 0x60000020)], **kwargs)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"ELF" + bytes(100), "no MZ header"),
        (b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40) + bytes(64), "no PE signature"),
        (_broken(magic=0x10B), "not PE32+"),
        (make_stub([StubSection("/4", 0x1000, b"x")]), "long section names"),
        (_broken(security=(0x2000, 0x100)), "already signed"),
        (make_stub([StubSection(".b", 0x3000, b"x"), StubSection(".a", 0x1000, b"y")]), "not sorted"),
    ],
)
def test_bad_stubs(tmp_path: Path, image: bytes, message: str) -> None:
    stub = tmp_path / "stub.efi"
    stub.write_bytes(image)
    with pytest.raises(PeError, match=message):
        assemble_pe(stub, [SectionSource(".cmdline", data=b"x")], tmp_path / "out.efi", timestamp=EPOCH)


@pytest.mark.parametrize(
    ("sections", "timestamp", "error", "message"),
    [
        ([SectionSource(".toolongname", data=b"x")], EPOCH, PeError, "1-8 ASCII bytes"),
        ([SectionSource(".cmdline")], EPOCH, ValueError, "exactly one of path or data"),
        ([SectionSource(".cmdline", data=b"x")], 1 << 32, PeError, "does not fit TimeDateStamp"),
    ],
)
def test_bad_sections(
    stub: Path, tmp_path: Path, sections: list[SectionSource], timestamp: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        assemble_pe(stub, sections, tmp_path / "out.efi", timestamp=timestamp)
