"""Synthetic inputs for the UKI/ISO unit tests: a minimal PE32+ stub, a bzImage header, fake tools on PATH."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from services.builder.steps.pe import read_pe, section_data

DOS_STUB = b"This program cannot be run in DOS mode.\r\r\n$"


@dataclass(frozen=True)
class StubSection:
    name: str
    virtual_address: int
    data: bytes
    characteristics: int = 0x40000040
    virtual_size: int | None = None  # defaults to len(data)


def make_stub(
    sections: list[StubSection],
    *,
    section_alignment: int = 0x1000,
    file_alignment: int = 0x200,
    magic: int = 0x20B,
    symbols: int = 0,
    security: tuple[int, int] = (0, 0),
    lfanew: int = 0x80,
) -> bytes:
    """A PE32+ image shaped like systemd's stub: a real DOS stub, linker 2.40, checksum set, optional symbols."""
    nsec = len(sections)
    header_end = lfanew + 4 + 20 + 240 + 40 * nsec
    size_of_headers = -(-header_end // file_alignment) * file_alignment
    raw, pointer, table = [], size_of_headers, b""
    for s in sections:
        size = -(-len(s.data) // file_alignment) * file_alignment
        vsize = s.virtual_size if s.virtual_size is not None else len(s.data)
        name = s.name.encode().ljust(8, b"\0")
        table += struct.pack("<8sIIII12xI", name, vsize, s.virtual_address, size, pointer, s.characteristics)
        raw.append(s.data.ljust(size, b"\0"))
        pointer += size
    last = sections[-1]
    size_of_image = -(-(last.virtual_address + len(last.data)) // section_alignment) * section_alignment
    coff = struct.pack("<HHIIIHH", 0x8664, nsec, 0, pointer if symbols else 0, symbols, 240, 0x206)
    opt = bytearray(240)
    struct.pack_into("<HBBIII", opt, 0, magic, 2, 40, 0x1234, 0x5678, 0)
    struct.pack_into("<II", opt, 16, sections[0].virtual_address, sections[0].virtual_address)
    struct.pack_into("<QII", opt, 24, 0, section_alignment, file_alignment)
    struct.pack_into("<III", opt, 56, size_of_image, size_of_headers, 0xABCDEF)
    struct.pack_into("<HH", opt, 68, 10, 0)
    struct.pack_into("<I", opt, 108, 16)
    struct.pack_into("<II", opt, 112 + 5 * 8, 0x1000, 12)  # base relocation directory, kept unchanged
    struct.pack_into("<II", opt, 112 + 4 * 8, *security)
    dos = bytearray(lfanew)
    dos[0:2] = b"MZ"
    dos[0x40 : 0x40 + len(DOS_STUB)] = DOS_STUB
    struct.pack_into("<I", dos, 0x3C, lfanew)
    head = bytes(dos) + b"PE\0\0" + coff + bytes(opt) + table
    image = head.ljust(size_of_headers, b"\0") + b"".join(raw)
    return image + (b"\x01" * 18 * symbols + b"\4\0\0\0" if symbols else b"")


def default_stub() -> bytes:
    return make_stub(
        [
            StubSection(".text", 0x1000, b"\x90" * 0x1234, 0x60000020),
            StubSection(".data", 0x3000, b"D" * 0x300, 0xC0000040),
            StubSection(".sbat", 0x4000, b"sbat,1,SBAT Version\n", 0x40000040),
            StubSection(".sdmagic", 0x5000, b"#### LoaderInfo: systemd-stub 257.1 ####\0", 0x40000040),
        ],
        symbols=3,
    )


def bzimage_header(version: str = "6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP") -> bytes:
    """Enough of an x86 boot header for `.uname` (§6.1): HdrS, setup_sects, kernel_version offset."""
    image = bytearray(0x4000)
    image[0x1F1] = 0x1F  # setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x20E, 0x3000)
    text = version.encode() + b"\0"
    image[0x3200 : 0x3200 + len(text)] = text
    return bytes(image)


def fake_tool(bindir: Path, name: str, log: Path, script: str = "") -> None:
    """A fake binary recording `SOURCE_DATE_EPOCH name args…` (tab-separated) in `log`, then running `script`."""
    path = bindir / name
    path.write_text(
        "#!/bin/sh\n"
        f'{{ printf "%s\\t" "$SOURCE_DATE_EPOCH" "{name}"; for a; do printf "%s\\t" "$a"; done; echo; }} >> "{log}"\n'
        + script
    )
    path.chmod(0o755)


def recorded(log: Path) -> list[list[str]]:
    return [line.rstrip("\t").split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def sections_of(path: Path) -> list[tuple[str, bytes]]:
    """(name, content truncated to VirtualSize) per section, read with our own reader."""
    return [(s.name, section_data(path, s)) for s in read_pe(path).sections]
