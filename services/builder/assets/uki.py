"""Unsigned UKI assembly (imager spec §6.1 sections and order, §6.2 PE layout).

This module builds the unsigned order `.sbat`(stub) `.osrel .cmdline [.uname] [.splash] .linux .initrd [profiles…]`.
For Secure Boot, `services.builder.secureboot` fills `UkiOptions.pcrpkey`/`pcrsigs`, which give the signed order
`… [.splash] .pcrpkey .linux .initrd` + `.pcrsig` after each profile (or at the end without profiles), §6.1;
the Authenticode signature (§6.4) comes from the signer service.
Version decisions (profiles from 1.10, …) arrive as explicit options: nothing here reads quirks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from services.builder.steps.pe import PeLayout, SectionSource, assemble_pe, read_pe, section_data
from services.shared.errors import Internal

logger = logging.getLogger(__name__)

# §6.1 os-release, `constants.OSReleaseTemplate` (ends with a newline).
_OS_RELEASE = """\
NAME="{name}"
ID={id}
VERSION_ID={version}
PRETTY_NAME="{name} ({version})"
HOME_URL="https://www.talos.dev/"
BUG_REPORT_URL="https://github.com/siderolabs/talos/issues"
VENDOR_NAME="Sidero Labs"
VENDOR_URL="https://www.siderolabs.com/"
"""

# §6.1 profile wipe suffixes per output kind.
_RESET_PROFILES = {
    "iso": ("reset", "Reset system disk", "talos.experimental.wipe=system"),
    "image": ("reset-maintenance", "Reset to maintenance mode", "talos.experimental.wipe=system:EPHEMERAL,STATE"),
    "installer": ("reset-maintenance", "Reset to maintenance mode", "talos.experimental.wipe=system:EPHEMERAL,STATE"),
}


@dataclass(frozen=True)
class UkiProfile:
    """One `.profile` section (+ its own `.cmdline` when `cmdline` is set), §6.1 "Profiles (≥1.10)"."""

    id: str
    title: str | None = None
    cmdline: str | None = None

    def text(self) -> str:
        """Profile text, no trailing newline."""
        return f"ID={self.id}" + (f"\nTITLE={self.title}" if self.title else "")


@dataclass(frozen=True)
class UkiOptions:
    """Inputs of one unsigned UKI.

    `uname=None` parses the version from the kernel (§6.1 `.uname`; left out when the kernel is no bzImage),
    `""` leaves it out. `profiles=()` is the pre-1.10 layout (no `.profile` sections). `splash=None` leaves
    `.splash` out (Talos ships `sidero.bmp`; the factory passes it when it has it).
    `require_profile_aware_stub=False` lets structural tests put profiles on an old stub that would boot the
    wrong one (see `check_stub`).
    Secure Boot (keyword-only, §6.1/§6.3): `pcrpkey` is the PEM public key of the PCR signing key; `pcrsigs`
    the `.pcrsig` JSON documents, one per profile (≥1.10) or exactly one without profiles (<1.10).
    """

    stub: Path
    kernel: Path
    initrd: Path
    cmdline: str
    os_release: str
    source_date_epoch: int
    splash: Path | None = None
    uname: str | None = None
    profiles: tuple[UkiProfile, ...] = ()
    require_profile_aware_stub: bool = True
    pcrpkey: bytes | None = field(default=None, kw_only=True)
    pcrsigs: tuple[bytes, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        if self.pcrsigs:
            if self.pcrpkey is None:
                raise ValueError(".pcrsig sections need the .pcrpkey they were signed for (§6.1)")
            if len(self.pcrsigs) != max(len(self.profiles), 1):
                raise ValueError(f"need one .pcrsig per UKI profile (or one without profiles), got {len(self.pcrsigs)}")
        for what, text in [("cmdline", self.cmdline), *((f"profile {p.id} cmdline", p.cmdline) for p in self.profiles)]:
            if text is not None and ("\n" in text or "\0" in text):
                raise ValueError(f"{what} must be one line without NUL bytes")
        ids = [p.id for p in self.profiles]
        if self.profiles and ids[0] != "main":
            raise ValueError("the first UKI profile must be ID=main (§6.1)")
        if len(set(ids)) != len(ids) or not all(ids):
            raise ValueError(f"UKI profile IDs must be unique and non-empty: {ids}")


def os_release(name: str, version: str) -> str:
    """§6.1 os-release text; `ID` is the lowercased name with spaces → `_`."""
    return _OS_RELEASE.format(name=name, id=name.lower().replace(" ", "_"), version=version)


def talos_profiles(kind: str, cmdline: str) -> tuple[UkiProfile, ...]:
    """§6.1 profiles for an output kind (≥1.10): `main` first, then the kind's reset profile, if any."""
    main = UkiProfile("main")
    if kind not in _RESET_PROFILES:
        return (main,)
    pid, title, wipe = _RESET_PROFILES[kind]
    return main, UkiProfile(pid, title, f"{cmdline} {wipe}")


def kernel_uname(kernel: Path) -> str | None:
    """Kernel version from an x86 bzImage header (§6.1 `.uname`); None for images without `HdrS` (arm64)."""
    with kernel.open("rb") as f:
        head = f.read(0x210)
        if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
            return None
        (offset,) = struct.unpack_from("<H", head, 0x20E)
        if not 0 < offset <= head[0x1F1] * 512:
            return None
        f.seek(offset + 0x200)
        text = f.read(256).split(b"\0", 1)[0].decode("ascii", errors="replace")
    return text.split(" ", 1)[0] or None


def stub_version(stub: Path) -> int | None:
    """systemd major version from the stub's `.sdmagic` (`#### LoaderInfo: systemd-stub 252.39 ####`)."""
    try:
        magic = section_data(stub, read_pe(stub).section(".sdmagic"))
    except KeyError:
        return None
    found = re.search(rb"systemd-stub (\d+)", magic)
    return int(found.group(1)) if found else None


def check_stub(options: UkiOptions) -> None:
    """Refuse profiles on a stub older than systemd 257 (multi-profile UKIs).

    Older stubs ignore `.profile` and take the *last* `.cmdline`: a 1.10+ ISO UKI built on Debian 12's
    systemd-stub 252 boots `… talos.experimental.wipe=system` by default (checked in qemu).
    """
    version = stub_version(options.stub)
    if options.profiles and options.require_profile_aware_stub and version is not None and version < 257:
        raise Internal(f"systemd-stub {version} does not support UKI profiles (needs ≥257); refusing to build")


def uki_sections(options: UkiOptions, uname: str | None) -> list[SectionSource]:
    """The appended sections in the §6.1 order (`.sbat` stays the stub's own): unsigned, or signed when
    `options.pcrpkey`/`options.pcrsigs` are set."""
    sections = [
        SectionSource(".osrel", data=options.os_release.encode()),
        SectionSource(".cmdline", data=options.cmdline.encode()),
    ]
    if uname:
        sections.append(SectionSource(".uname", data=uname.encode()))
    if options.splash is not None:
        sections.append(SectionSource(".splash", path=options.splash))
    if options.pcrpkey is not None:
        sections.append(SectionSource(".pcrpkey", data=options.pcrpkey))
    sections += [SectionSource(".linux", path=options.kernel), SectionSource(".initrd", path=options.initrd)]
    pcrsigs = iter(options.pcrsigs)
    for profile in options.profiles:
        sections.append(SectionSource(".profile", data=profile.text().encode()))
        if profile.cmdline is not None:
            sections.append(SectionSource(".cmdline", data=profile.cmdline.encode()))
        if options.pcrsigs:
            sections.append(SectionSource(".pcrsig", data=next(pcrsigs)))
    if options.pcrsigs and not options.profiles:
        sections.append(SectionSource(".pcrsig", data=options.pcrsigs[0]))
    return sections


async def build_uki(options: UkiOptions, out: Path) -> PeLayout:
    """Assemble the UKI into `out` (PE writing runs in a worker thread: UKIs are 50-150 MB)."""
    await asyncio.to_thread(check_stub, options)
    uname = options.uname if options.uname is not None else await asyncio.to_thread(kernel_uname, options.kernel)
    sections = uki_sections(options, uname)
    layout = await asyncio.to_thread(assemble_pe, options.stub, sections, out, timestamp=options.source_date_epoch)
    logger.debug("UKI %s: %s", out, " ".join(s.name for s in layout.sections))
    return layout
