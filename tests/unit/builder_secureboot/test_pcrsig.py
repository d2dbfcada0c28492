"""PCR 11 prediction from files and `.pcrsig` assembly on the builder side (imager spec §6.3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.builder.secureboot.pcrsig import (
    check_pcr_signatures,
    measure_section,
    measured_sections,
    pcr_values,
    pcrsig_document,
)
from services.builder.steps.pe import SectionSource
from services.shared.errors import VerificationFailed
from services.signer.keys import KeySet
from services.signer.pcr import Bank, pcrsig, predict_pcr11, section_maps, sign_pcr_policy
from tests.unit.builder_uki_iso.helpers import StubSection, make_stub

SBAT = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    path = tmp_path / "stub.efi"
    path.write_bytes(
        make_stub(
            [
                StubSection(".text", 0x1000, b"\x90" * 0x800, 0x60000020),
                # Raw data is padded past VirtualSize: only VirtualSize bytes are measured (§6.1).
                StubSection(".sbat", 0x2000, SBAT + b"\0" * 40, virtual_size=len(SBAT)),
                StubSection(".sdmagic", 0x3000, b"#### LoaderInfo: systemd-stub 257.1 ####\0"),
            ]
        )
    )
    return path


def test_measure_section_hashes_every_bank_in_one_pass() -> None:
    measured = measure_section(".linux", iter([b"abc", b"", b"def"]))
    assert measured.name == ".linux"
    for bank in Bank:
        assert measured.digest(bank) == hashlib.new(bank.value, b"abcdef").digest()


def test_measured_sections_are_file_ordered_and_skip_unmeasured(stub: Path, tmp_path: Path) -> None:
    (tmp_path / "kernel").write_bytes(b"K" * 3_000_000)  # > one read chunk
    appended = [
        SectionSource(".osrel", data=b"NAME=x\n"),
        SectionSource(".linux", path=tmp_path / "kernel"),
        SectionSource(".pcrsig", data=b"{}"),
        SectionSource(".profile", data=b"ID=main"),
    ]
    measured = measured_sections(stub, appended)
    assert [m.name for m in measured] == [".sbat", ".osrel", ".linux", ".profile"]
    assert measured[0].digest(Bank.SHA256) == hashlib.sha256(SBAT).digest()
    assert measured[2].digest(Bank.SHA512) == hashlib.sha512(b"K" * 3_000_000).digest()


def _sections() -> list[tuple[str, bytes]]:
    return [
        (".sbat", SBAT),
        (".osrel", b"NAME=Talos\n"),
        (".cmdline", b"console=ttyS0"),
        (".pcrpkey", b"-----BEGIN PUBLIC KEY-----\n"),
        (".linux", b"kernel"),
        (".initrd", b"initrd"),
        (".profile", b"ID=main"),
        (".profile", b"ID=reset\nTITLE=Reset system disk"),
        (".cmdline", b"console=ttyS0 talos.experimental.wipe=system"),
    ]


def test_pcr_values_match_the_signers_byte_api() -> None:
    """Digest-based prediction == `predict_pcr11` over the data, per profile map (§6.3)."""
    sections = _sections()
    values = pcr_values([measure_section(name, iter([data])) for name, data in sections])
    maps = section_maps(sections)
    assert len(values) == len(maps) == 2
    for got, expected_map in zip(values, maps, strict=True):
        assert set(got) == set(Bank)
        for bank in Bank:
            assert got[bank] == predict_pcr11(expected_map, bank)[-1][1]
    # The reset profile measures its own .cmdline instead of the base one.
    assert values[0][Bank.SHA256] != values[1][Bank.SHA256]


def test_pre_profile_uki_has_one_value() -> None:
    sections = [s for s in _sections() if s[0] != ".profile"][:6]
    (values,) = pcr_values([measure_section(name, iter([data])) for name, data in sections])
    assert values[Bank.SHA384] == predict_pcr11(dict(sections), Bank.SHA384)[-1][1]


def test_document_equals_the_signers_own_pcrsig(sb_keys: KeySet) -> None:
    """The builder's split path (predict here, sign there) gives the bytes `pcr.pcrsig` gives in one go
    (RSASSA-PKCS1-v1_5 is deterministic)."""
    sections = dict(_sections()[:6])
    (values,) = pcr_values([measure_section(name, iter([data])) for name, data in sections.items()])
    entries = {bank: sign_pcr_policy(sb_keys.pcr, bank, value) for bank, value in values.items()}
    check_pcr_signatures(values, entries, sb_keys.pcr.public_key_pem())
    assert pcrsig_document(entries) == pcrsig(sb_keys.pcr, sections)


def test_check_rejects_missing_banks_wrong_values_and_other_keys(sb_keys: KeySet, other_sb_keys: KeySet) -> None:
    values = {bank: bank.hash(b"x") for bank in Bank}
    entries = {bank: sign_pcr_policy(sb_keys.pcr, bank, value) for bank, value in values.items()}
    pem = sb_keys.pcr.public_key_pem()
    with pytest.raises(VerificationFailed, match="asked for"):
        check_pcr_signatures(values, {Bank.SHA256: entries[Bank.SHA256]}, pem)
    with pytest.raises(VerificationFailed, match="does not match the predicted"):
        check_pcr_signatures({**values, Bank.SHA512: Bank.SHA512.hash(b"y")}, entries, pem)
    with pytest.raises(VerificationFailed, match="another key"):
        check_pcr_signatures(values, entries, other_sb_keys.pcr.public_key_pem())
