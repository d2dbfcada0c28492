"""Native PE32+ reader and section appender for UKIs (imager spec §6.2, `pe/native.go: AssembleNative`).

Why not objcopy: `objcopy --add-section` cannot add a second section with an existing name, and UKIs with
profiles (≥1.10) carry several `.cmdline`/`.profile` sections (spec §6.1/§6.2). The spec's layout is simple
enough to write with `struct`: every header field is either copied from the stub or computed below.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.shared.errors import Internal

PE32_PLUS = 0x20B
OPTIONAL_HEADER_SIZE = 240  # PE32+ with 16 data directories
COFF_HEADER_SIZE = 20
SECTION_HEADER_SIZE = 40
NEW_LFANEW = 0x80  # §6.2 step 1: 0x40 DOS header + 0x40 zero bytes (the DOS stub is dropped)
SCN_CNT_INITIALIZED_DATA = 0x00000040
SCN_MEM_READ = 0x40000000
APPENDED_CHARACTERISTICS = SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ  # 0x40000040, §6.2 step 4
_SECURITY_DIRECTORY = 4
_COPY_CHUNK = 1 << 20


class PeError(Internal):
    """The stub (or a file read as PE) does not have the shape §6.2 requires."""


@dataclass(frozen=True)
class PeSection:
    """The fields of a section header that §6.2 step 5 keeps."""

    name: str
    virtual_size: int
    virtual_address: int
    raw_size: int
    raw_pointer: int
    characteristics: int


@dataclass(frozen=True)
class PeFile:
    """Parsed headers of a PE32+ file. `coff` and `optional` are the raw header bytes."""

    coff: bytes
    optional: bytes
    sections: tuple[PeSection, ...]
    symbols: int = 0  # COFF symbol count (Debian's stub has a table after its last section)

    def _u32(self, off: int) -> int:
        return int(struct.unpack_from("<I", self.optional, off)[0])

    @property
    def timestamp(self) -> int:
        return int(struct.unpack_from("<I", self.coff, 4)[0])

    @property
    def linker_version(self) -> tuple[int, int]:
        return self.optional[2], self.optional[3]

    @property
    def size_of_code(self) -> int:
        return self._u32(4)

    @property
    def size_of_initialized_data(self) -> int:
        return self._u32(8)

    @property
    def section_alignment(self) -> int:
        return self._u32(32)

    @property
    def file_alignment(self) -> int:
        return self._u32(36)

    @property
    def size_of_image(self) -> int:
        return self._u32(56)

    @property
    def size_of_headers(self) -> int:
        return self._u32(60)

    @property
    def checksum(self) -> int:
        return self._u32(64)

    def data_directory(self, index: int) -> tuple[int, int]:
        va, size = struct.unpack_from("<II", self.optional, 112 + 8 * index)
        return int(va), int(size)

    def section(self, name: str) -> PeSection:
        """The first section called `name` (UKIs with profiles repeat names: iterate `sections` for those)."""
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(name)


def parse_pe(head: bytes) -> PeFile:
    """Parse DOS, COFF, optional and section headers from the first bytes of a file."""
    if len(head) < 0x40 or head[:2] != b"MZ":
        raise PeError("not a PE file: no MZ header")
    (lfanew,) = struct.unpack_from("<I", head, 0x3C)
    if head[lfanew : lfanew + 4] != b"PE\0\0":
        raise PeError("not a PE file: no PE signature")
    coff = head[lfanew + 4 : lfanew + 4 + COFF_HEADER_SIZE]
    nsections, _, symtab, nsymbols, opt_size = struct.unpack_from("<HIIIH", coff, 2)
    opt_start = lfanew + 4 + COFF_HEADER_SIZE
    optional = head[opt_start : opt_start + opt_size]
    if opt_size != OPTIONAL_HEADER_SIZE or struct.unpack_from("<H", optional, 0)[0] != PE32_PLUS:
        raise PeError(f"not PE32+ with 16 data directories (optional header is {opt_size} bytes)")
    table = opt_start + opt_size
    if len(head) < table + SECTION_HEADER_SIZE * nsections:
        raise PeError("truncated section table")
    sections = []
    for i in range(nsections):
        raw = struct.unpack_from("<8sIIII12xI", head, table + SECTION_HEADER_SIZE * i)
        sections.append(PeSection(raw[0].rstrip(b"\0").decode("ascii"), *raw[1:]))
    if any(s.name.startswith("/") for s in sections):
        raise PeError("long section names (string table references) are not supported (§6.2)")
    return PeFile(bytes(coff), bytes(optional), tuple(sections), symbols=nsymbols if symtab else 0)


def read_pe(path: Path) -> PeFile:
    with path.open("rb") as f:
        return parse_pe(f.read(64 * 1024))  # headers of any stub or UKI fit in 64 KiB


def section_data(path: Path, section: PeSection) -> bytes:
    """Section content truncated to VirtualSize (how §6.1/§6.3 read `.sbat` and appended data)."""
    with path.open("rb") as f:
        f.seek(section.raw_pointer)
        return f.read(min(section.raw_size, section.virtual_size))


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class PeLayout:
    """Final section table and recomputed optional-header fields (§6.2 steps 3-5)."""

    sections: tuple[PeSection, ...]
    size_of_headers: int
    size_of_image: int
    size_of_code: int
    size_of_initialized_data: int


def plan_layout(stub: PeFile, appended: Sequence[tuple[str, int]]) -> PeLayout:
    """Pure §6.2 arithmetic: VAs after the stub's last section, raw data contiguous from SizeOfHeaders."""
    if not stub.sections:
        raise PeError("stub has no sections")
    if any(b.virtual_address < a.virtual_address for a, b in zip(stub.sections, stub.sections[1:], strict=False)):
        raise PeError("stub sections are not sorted by virtual address")
    salign, falign = stub.section_alignment, stub.file_alignment
    last = stub.sections[-1]
    va = _align(last.virtual_address + last.virtual_size, salign)
    headers = list(stub.sections)
    for name, size in appended:
        encoded = name.encode("ascii")
        if not 0 < len(encoded) <= 8:
            raise PeError(f"section name {name!r} must be 1-8 ASCII bytes")
        headers.append(PeSection(name, size, va, _align(size, falign), 0, APPENDED_CHARACTERISTICS))
        va = _align(va + size, salign)
    size_of_headers = _align(NEW_LFANEW + 4 + COFF_HEADER_SIZE + OPTIONAL_HEADER_SIZE + 40 * len(headers), falign)
    pointer, final = size_of_headers, []
    for h in headers:
        final.append(PeSection(h.name, h.virtual_size, h.virtual_address, h.raw_size, pointer, h.characteristics))
        pointer += h.raw_size
    end = final[-1].virtual_address + final[-1].virtual_size
    if _align(end, salign) >= 1 << 32:
        raise PeError("sections do not fit a 32-bit image")
    return PeLayout(
        sections=tuple(final),
        size_of_headers=size_of_headers,
        size_of_image=_align(end, salign),
        size_of_code=sum(s.raw_size for s in final if not s.characteristics & SCN_CNT_INITIALIZED_DATA),
        size_of_initialized_data=sum(s.raw_size for s in final if s.characteristics & SCN_CNT_INITIALIZED_DATA),
    )


def render_headers(dos: bytes, stub: PeFile, layout: PeLayout, timestamp: int) -> bytes:
    """Header bytes up to SizeOfHeaders (§6.2 steps 1-3 and 5)."""
    if not 0 <= timestamp < 1 << 32:
        raise PeError(f"timestamp {timestamp} does not fit TimeDateStamp")
    coff = bytearray(stub.coff)
    # Talos rejects stubs with a COFF symbol table (§6.2). Debian's systemd-boot-efi 252 stub has one (debug
    # symbols after the last section, not part of the loaded image), so it is dropped instead: no pointer,
    # no count. Section names stay ≤8 bytes, so nothing refers to the string table behind it.
    struct.pack_into("<HIII", coff, 2, len(layout.sections), timestamp, 0, 0)
    opt = bytearray(stub.optional)
    opt[2:4] = b"\0\0"  # linker version
    struct.pack_into("<II", opt, 4, layout.size_of_code, layout.size_of_initialized_data)
    struct.pack_into("<III", opt, 56, layout.size_of_image, layout.size_of_headers, 0)  # CheckSum = 0
    out = bytearray(dos[:0x3C]) + struct.pack("<I", NEW_LFANEW) + bytes(0x40) + b"PE\0\0" + coff + opt
    for s in layout.sections:
        name = s.name.encode("ascii").ljust(8, b"\0")
        out += struct.pack("<8sIIII12xI", name, s.virtual_size, s.virtual_address, s.raw_size, s.raw_pointer,
                           s.characteristics)  # fmt: skip
    return bytes(out.ljust(layout.size_of_headers, b"\0"))


@dataclass(frozen=True)
class SectionSource:
    """One appended section: its content is either a file or inline bytes."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        if (self.path is None) == (self.data is None):
            raise ValueError(f"section {self.name}: give exactly one of path or data")
        return self.path.stat().st_size if self.path is not None else len(self.data or b"")


def assemble_pe(stub_path: Path, sections: Sequence[SectionSource], out: Path, *, timestamp: int) -> PeLayout:
    """Write stub + appended sections to `out` per §6.2 (blocking; call through `asyncio.to_thread`)."""
    with stub_path.open("rb") as stub_f:
        head = stub_f.read(64 * 1024)
        stub = parse_pe(head)
        if stub.data_directory(_SECURITY_DIRECTORY) != (0, 0):
            raise PeError("stub is already signed: its certificate table would not survive reassembly")
        layout = plan_layout(stub, [(s.name, s.size()) for s in sections])
        with out.open("wb") as f:
            f.write(render_headers(head, stub, layout, timestamp))
            for old in stub.sections:
                stub_f.seek(old.raw_pointer)
                if _copy(stub_f, f, old.raw_size) != old.raw_size:
                    raise PeError(f"stub section {old.name} extends past the end of the file")
            for source, header in zip(sections, layout.sections[len(stub.sections) :], strict=True):
                if source.path is not None:
                    with source.path.open("rb") as src:
                        written = _copy(src, f, header.virtual_size)
                else:
                    written = f.write(source.data or b"")
                if written != header.virtual_size:
                    raise PeError(f"section {source.name} changed size while the UKI was written")
                f.write(bytes(header.raw_size - written))
    return layout


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> int:
    done = 0
    while done < length and (chunk := src.read(min(_COPY_CHUNK, length - done))):
        dst.write(chunk)
        done += len(chunk)
    return done
