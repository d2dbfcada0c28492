"""`.pcrsig` for a UKI: PCR 11 predicted by the builder, policies signed by the signer (imager spec §6.3).

Section data is hashed once per bank straight from the files, in the stub's and the UKI's file order;
`section_maps` then gives what each `.pcrsig` covers (everything for <1.10, base + one profile from 1.10).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.builder.steps.pe import SectionSource, read_pe, section_data
from services.shared.errors import VerificationFailed
from services.signer.pcr import (
    MEASURED_SECTIONS,
    Bank,
    BankSignature,
    encode_pcrsig,
    predict_pcr11_from_digests,
    section_maps,
    verify_pcr_policy,
)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class MeasuredSection:
    """A measured UKI section as systemd-stub sees it: its name and its data's digest per bank."""

    name: str
    digests: tuple[tuple[Bank, bytes], ...]

    def digest(self, bank: Bank) -> bytes:
        return dict(self.digests)[bank]


def _chunks(source: SectionSource) -> Iterator[bytes]:
    if source.path is None:
        yield source.data or b""
        return
    with source.path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def measure_section(name: str, chunks: Iterator[bytes]) -> MeasuredSection:
    """Hash one section's data with every bank in a single pass (blocking)."""
    hashers = {bank: hashlib.new(bank.value) for bank in Bank}
    for chunk in chunks:
        for hasher in hashers.values():
            hasher.update(chunk)
    return MeasuredSection(name, tuple((bank, hasher.digest()) for bank, hasher in hashers.items()))


def measured_sections(stub: Path, appended: Sequence[SectionSource]) -> list[MeasuredSection]:
    """Measured sections in file order: the stub's own (`.sbat`, data cut to VirtualSize, §6.1), then
    the appended ones. `.pcrsig` and code sections are not measured (blocking)."""
    measured = set(MEASURED_SECTIONS)
    result = [
        measure_section(s.name, iter([section_data(stub, s)])) for s in read_pe(stub).sections if s.name in measured
    ]
    result += [measure_section(s.name, _chunks(s)) for s in appended if s.name in measured]
    return result


def pcr_values(sections: Sequence[MeasuredSection]) -> list[dict[Bank, bytes]]:
    """The final PCR 11 value per bank for each `.pcrsig` to write, in file order (§6.3)."""
    per_bank = {}
    for bank in Bank:
        maps = section_maps([(s.name, s.digest(bank)) for s in sections])
        per_bank[bank] = [predict_pcr11_from_digests(digests, bank)[-1][1] for digests in maps]
    return [{bank: values[i] for bank, values in per_bank.items()} for i in range(len(per_bank[Bank.SHA256]))]


def check_pcr_signatures(
    values: Mapping[Bank, bytes], entries: Mapping[Bank, BankSignature], public_key_pem: bytes
) -> None:
    """What came back must sign exactly our prediction with the key in `.pcrpkey`; raises VerificationFailed."""
    if set(entries) != set(values):
        raise VerificationFailed(f"signer returned PCR signatures for {sorted(entries)}, asked for {sorted(values)}")
    for bank, value in values.items():
        verify_pcr_policy(public_key_pem, bank, value, entries[bank])


def pcrsig_document(entries: Mapping[Bank, BankSignature]) -> bytes:
    """The `.pcrsig` JSON (Go `json.Marshal` shape, banks sha256, sha384, sha512)."""
    return encode_pcrsig(entries)
