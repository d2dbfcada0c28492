"""Authenticode signing with sbsign, checked by sbverify (imager spec §6.4, lab REPORT §4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.shared.tools import ToolFailed
from services.signer.keys import KeySet
from services.signer.pe import sbsign_argv, sign_pe, verify_pe
from tests.support.real_tools import require_file, require_tools

# Debian's systemd-boot-efi ships both unsigned: small real PE32+ EFI binaries.
EFI_CANDIDATES = (
    Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
    Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
)


@pytest.fixture
def efi(tmp_path: Path) -> Path:
    source = require_file(*EFI_CANDIDATES)
    copy = tmp_path / "input.efi"
    copy.write_bytes(source.read_bytes())
    return copy


def _size(path: Path) -> int:
    return path.stat().st_size


def test_sbsign_argv() -> None:
    argv = sbsign_argv(Path("in.efi"), Path("out.efi"), Path("/k/key.pem"), Path("/k/cert.pem"))
    assert argv == [
        "sbsign", "--key", "/k/key.pem", "--cert", "/k/cert.pem", "--output", "out.efi", "in.efi",
    ]  # fmt: skip


async def test_signed_pe_verifies_only_with_our_certificate(
    efi: Path, tmp_path: Path, keyset: KeySet, other_keyset: KeySet
) -> None:
    require_tools("sbsign", "sbverify")
    sb = keyset.secureboot
    out = tmp_path / "signed.efi"
    await sign_pe(efi, out, sb.key_path, sb.cert_path)
    assert _size(out) > _size(efi)
    assert not (tmp_path / "signed.efi.partial").exists()
    assert await verify_pe(out, sb.cert_path)
    assert not await verify_pe(out, other_keyset.secureboot.cert_path)
    assert not await verify_pe(efi, sb.cert_path)


async def test_tampered_signed_pe_fails(efi: Path, tmp_path: Path, keyset: KeySet) -> None:
    require_tools("sbsign", "sbverify")
    sb = keyset.secureboot
    out = tmp_path / "signed.efi"
    await sign_pe(efi, out, sb.key_path, sb.cert_path)
    data = bytearray(out.read_bytes())
    data[0x400] ^= 0xFF  # inside the first section's raw data, covered by the Authenticode hash
    out.write_bytes(bytes(data))
    assert not await verify_pe(out, sb.cert_path)


async def test_sign_failure_leaves_nothing(efi: Path, tmp_path: Path, keyset: KeySet) -> None:
    require_tools("sbsign")
    bad_key = tmp_path / "bad-key.pem"
    bad_key.write_text("not a key\n")
    out = tmp_path / "signed.efi"
    with pytest.raises(ToolFailed, match=r"^sbsign failed with exit code 1"):
        await sign_pe(efi, out, bad_key, keyset.secureboot.cert_path)
    assert not out.exists()
    assert not (tmp_path / "signed.efi.partial").exists()
