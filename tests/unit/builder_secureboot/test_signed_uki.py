"""Secure Boot UKI assembly on a synthetic stub (imager spec §6.1 signed order, §6.3 `.pcrsig`, §6.4).

The signer is the in-process one over the signer's domain code, with a fake `sbsign` on PATH that records
its argv and copies the file; sections are read back with pefile (independent of our PE reader).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from services.builder.assets.uki import UkiOptions, os_release, talos_profiles, uki_sections
from services.builder.secureboot import build_signed_uki, pcr_public_key, sign_sdboot
from services.shared.errors import Internal, VerificationFailed
from services.signer.keys import KeySet
from services.signer.pcr import Bank, BankSignature, predict_pcr11, sign_pcr_policy, verify_pcr_policy
from tests.unit.builder_secureboot.local_signer import InProcessSigner
from tests.unit.builder_uki_iso.helpers import (
    StubSection,
    bzimage_header,
    default_stub,
    fake_tool,
    make_stub,
    recorded,
)

EPOCH = 1559424892
CMDLINE = "talos.platform=metal console=ttyS0 lockdown=confidentiality"
STUB_SECTIONS = [".text", ".data", ".sbat", ".sdmagic"]


@pytest.fixture
def fake_sbsign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sbsign --key K --cert C --output OUT IN` → copy IN to OUT, record argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "tools.log"
    fake_tool(bindir, "sbsign", log, 'cp "$7" "$6"\n')
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
def options(tmp_path: Path) -> UkiOptions:
    (tmp_path / "stub.efi").write_bytes(default_stub())
    (tmp_path / "vmlinuz").write_bytes(bzimage_header() + b"K" * 5000)
    (tmp_path / "initramfs.xz").write_bytes(b"\xfd7zXZ\0" + b"I" * 3000)
    (tmp_path / "splash.bmp").write_bytes(b"BM" + b"S" * 100)
    return UkiOptions(
        stub=tmp_path / "stub.efi",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initramfs.xz",
        cmdline=CMDLINE,
        os_release=os_release("Talos", "v1.12.0"),
        source_date_epoch=EPOCH,
        splash=tmp_path / "splash.bmp",
    )


def read_sections(pefile: Any, path: Path) -> list[tuple[str, bytes]]:
    pe = pefile.PE(str(path))
    try:
        return [(s.Name.rstrip(b"\0").decode(), s.get_data()[: s.Misc_VirtualSize]) for s in pe.sections]
    finally:
        pe.close()


def check_pcrsig(document: bytes, covered: Mapping[str, bytes], public_key_pem: bytes) -> None:
    """§6.3/§12: compact JSON, banks sha256/384/512, one entry each that verifies for `covered`."""
    assert b" " not in document and b"\n" not in document
    parsed = json.loads(document)
    assert list(parsed) == ["sha256", "sha384", "sha512"]
    for bank in Bank:
        (entry,) = parsed[bank.value]
        assert list(entry) == ["pcrs", "pkfp", "pol", "sig"] and entry["pcrs"] == [11]
        _, value = predict_pcr11(covered, bank)[-1]
        verify_pcr_policy(public_key_pem, bank, value, BankSignature((11,), entry["pkfp"], entry["pol"], entry["sig"]))


async def test_pre_profile_signed_layout(
    options: UkiOptions, sb_keys: KeySet, fake_sbsign: Path, tmp_path: Path, pefile: Any
) -> None:
    """<1.10: `.osrel .cmdline .uname .splash .pcrpkey .linux .initrd .pcrsig`, one signature over all."""
    signer = InProcessSigner(sb_keys)
    signed = await build_signed_uki(options, signer, tmp_path / "uki.efi", tmp_path)
    sections = read_sections(pefile, signed.path)
    names = [name for name, _ in sections]
    assert names == [*STUB_SECTIONS, ".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".linux", ".initrd",
                     ".pcrsig"]  # fmt: skip
    content = dict(sections)
    assert content[".pcrpkey"] == sb_keys.pcr.public_key_pem()
    assert content[".linux"] == options.kernel.read_bytes()
    assert (content[".pcrsig"],) == signed.pcrsigs
    measured = {name: data for name, data in sections if name != ".pcrsig"}
    check_pcrsig(content[".pcrsig"], measured, sb_keys.pcr.public_key_pem())
    assert not (tmp_path / "uki.efi.unsigned").exists()


async def test_profiles_get_one_pcrsig_each(
    options: UkiOptions, sb_keys: KeySet, fake_sbsign: Path, tmp_path: Path, pefile: Any
) -> None:
    """≥1.10: `.profile(main) .pcrsig .profile(reset) .cmdline .pcrsig`, each over base + its profile."""
    options = dataclasses.replace(options, profiles=talos_profiles("iso", CMDLINE))
    signer = InProcessSigner(sb_keys)
    signed = await build_signed_uki(options, signer, tmp_path / "uki.efi", tmp_path)
    sections = read_sections(pefile, signed.path)
    names = [name for name, _ in sections]
    assert names[len(STUB_SECTIONS) :] == [
        ".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".linux", ".initrd",
        ".profile", ".pcrsig", ".profile", ".cmdline", ".pcrsig",
    ]  # fmt: skip
    first_profile = names.index(".profile")
    base = dict(sections[:first_profile])
    main = base | {".profile": b"ID=main"}
    reset = base | {
        ".profile": b"ID=reset\nTITLE=Reset system disk",
        ".cmdline": f"{CMDLINE} talos.experimental.wipe=system".encode(),
    }
    documents = [data for name, data in sections if name == ".pcrsig"]
    assert tuple(documents) == signed.pcrsigs
    check_pcrsig(documents[0], main, sb_keys.pcr.public_key_pem())
    check_pcrsig(documents[1], reset, sb_keys.pcr.public_key_pem())
    with pytest.raises(VerificationFailed):
        check_pcrsig(documents[0], reset, sb_keys.pcr.public_key_pem())
    # One key-only request for .pcrpkey, then all three banks per profile.
    assert [sorted(r) for r in signer.pcr_requests] == [[], sorted(Bank), sorted(Bank)]


async def test_sbsign_argv(options: UkiOptions, sb_keys: KeySet, fake_sbsign: Path, tmp_path: Path) -> None:
    signer = InProcessSigner(sb_keys)
    await build_signed_uki(options, signer, tmp_path / "uki.efi", tmp_path)
    await sign_sdboot(signer, options.stub, tmp_path / "systemd-boot.efi.signed")
    key, cert = str(sb_keys.secureboot.key_path), str(sb_keys.secureboot.cert_path)
    assert [call[1:] for call in recorded(fake_sbsign)] == [
        ["sbsign", "--key", key, "--cert", cert, "--output", f"{tmp_path}/uki.efi.partial",
         f"{tmp_path}/uki.efi.unsigned"],
        ["sbsign", "--key", key, "--cert", cert, "--output", f"{tmp_path}/systemd-boot.efi.signed.partial",
         str(options.stub)],
    ]  # fmt: skip


class _RotatingSigner(InProcessSigner):
    """Answers the key-only request with one key and signs with another."""

    def __init__(self, keys: KeySet, other: KeySet) -> None:
        super().__init__(keys)
        self.other = other

    async def sign_pcr(self, values: Mapping[Bank, bytes]) -> tuple[dict[Bank, BankSignature], bytes]:
        if not values:
            return {}, self.keys.pcr.public_key_pem()
        return {b: sign_pcr_policy(self.other.pcr, b, v) for b, v in values.items()}, self.other.pcr.public_key_pem()


async def test_signatures_by_another_key_are_refused(
    options: UkiOptions, sb_keys: KeySet, other_sb_keys: KeySet, fake_sbsign: Path, tmp_path: Path
) -> None:
    with pytest.raises(VerificationFailed, match="another key"):
        await build_signed_uki(options, _RotatingSigner(sb_keys, other_sb_keys), tmp_path / "uki.efi", tmp_path)
    assert not (tmp_path / "uki.efi").exists() and recorded(fake_sbsign) == []


async def test_old_stub_with_profiles_is_refused_before_signing(
    options: UkiOptions, sb_keys: KeySet, tmp_path: Path
) -> None:
    old = tmp_path / "old-stub.efi"
    sdmagic = b"#### LoaderInfo: systemd-stub 252.39 ####\0"
    old.write_bytes(make_stub([StubSection(".text", 0x1000, b"\x90" * 16, 0x60000020),
                               StubSection(".sdmagic", 0x2000, sdmagic)]))  # fmt: skip
    options = dataclasses.replace(options, stub=old, profiles=talos_profiles("iso", CMDLINE))
    signer = InProcessSigner(sb_keys)
    with pytest.raises(Internal, match="does not support UKI profiles"):
        await build_signed_uki(options, signer, tmp_path / "uki.efi", tmp_path)
    assert signer.pcr_requests == []


async def test_pcr_public_key(sb_keys: KeySet) -> None:
    assert await pcr_public_key(InProcessSigner(sb_keys)) == sb_keys.pcr.public_key_pem()


def test_uki_options_check_pcr_sections(options: UkiOptions) -> None:
    replace = dataclasses.replace
    with pytest.raises(ValueError, match=r"need the \.pcrpkey"):
        replace(options, pcrsigs=(b"{}",))
    with pytest.raises(ValueError, match=r"one \.pcrsig per UKI profile"):
        replace(options, pcrpkey=b"k", pcrsigs=(b"{}", b"{}"))
    profiles = talos_profiles("iso", CMDLINE)
    with pytest.raises(ValueError, match=r"one \.pcrsig per UKI profile"):
        replace(options, profiles=profiles, pcrpkey=b"k", pcrsigs=(b"{}",))
    signed = replace(options, profiles=profiles, pcrpkey=b"k", pcrsigs=(b"1", b"2"))
    sections = uki_sections(signed, "6.1")
    assert [s.name for s in sections] == [".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".linux", ".initrd",
                                          ".profile", ".pcrsig", ".profile", ".cmdline", ".pcrsig"]  # fmt: skip
    assert [s.data for s in sections if s.name == ".pcrsig"] == [b"1", b"2"]
    unsigned = [s.name for s in uki_sections(options, "6.1")]
    assert ".pcrpkey" not in unsigned and ".pcrsig" not in unsigned
    no_splash = [s.name for s in uki_sections(replace(options, splash=None, pcrpkey=b"k", pcrsigs=(b"1",)), None)]
    assert no_splash == [".osrel", ".cmdline", ".pcrpkey", ".linux", ".initrd", ".pcrsig"]
