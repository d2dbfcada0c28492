"""PCR 11 prediction and the `.pcrsig` policy signature of signed UKIs (imager spec §6.3).

Equivalent to `systemd-measure sign --phases=enter-initrd:leave-initrd:enter-machined
--bank=sha256,sha384,sha512`: the PCR value is predicted from the measured UKI sections, only the value
after the last phase is signed, and the result is one `{"pcrs":[11],...}` entry per bank.
The prediction is pure; only `sign_pcr_policy` needs the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.shared.errors import InvalidArgument, VerificationFailed
from services.signer.keys import PcrKey

PCR_INDEX = 11
# Measurement order of the UKI sections, independent of their order in the file (imager spec §6.3).
MEASURED_SECTIONS = (
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb",
    ".uname", ".sbat", ".pcrpkey", ".profile", ".dtbauto", ".hwids",
)  # fmt: skip
PHASES = ("enter-initrd", "leave-initrd", "enter-machined")
_TPM_CC_POLICY_PCR = 0x0000017F
_PCR11_SELECT = bytes([0x00, 0x08, 0x00])  # sizeofSelect 3, bit 11 set


class Bank(StrEnum):
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    @property
    def algorithm(self) -> hashes.HashAlgorithm:
        algorithms: dict[str, hashes.HashAlgorithm] = {
            "sha256": hashes.SHA256(),
            "sha384": hashes.SHA384(),
            "sha512": hashes.SHA512(),
        }
        return algorithms[self.value]

    @property
    def tpm_alg_id(self) -> int:
        """TPM2_ALG_ID (TPM 2.0 Part 2, table 9)."""
        return {"sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}[self.value]

    @property
    def digest_size(self) -> int:
        return self.algorithm.digest_size

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.value, data).digest()


@dataclass(frozen=True)
class BankSignature:
    """One `.pcrsig` bank entry; `to_json()` gives Go's field order."""

    pcrs: tuple[int, ...]
    pkfp: str  # hex SHA-256 of the PKCS#1 RSAPublicKey DER
    pol: str  # hex TPM2 PolicyPCR digest
    sig: str  # base64 RSASSA-PKCS1-v1_5 signature

    def to_json(self) -> dict[str, object]:
        return {"pcrs": list(self.pcrs), "pkfp": self.pkfp, "pol": self.pol, "sig": self.sig}


def predict_pcr11(sections: Mapping[str, bytes], bank: Bank) -> list[tuple[str, bytes]]:
    """PCR 11 after each boot phase, keyed by systemd phase path ("enter-initrd:leave-initrd", ...).

    `sections` maps section name → data (for `.sbat`, the stub's data cut to VirtualSize); names
    outside MEASURED_SECTIONS (stub code, `.pcrsig`) are not measured.
    """

    return predict_pcr11_from_digests({name: bank.hash(data) for name, data in sections.items()}, bank)


def predict_pcr11_from_digests(digests: Mapping[str, bytes], bank: Bank) -> list[tuple[str, bytes]]:
    """`predict_pcr11` from each section's `bank` digest instead of its data.

    A UKI's `.linux`/`.initrd` run to hundreds of MiB: the builder streams them from disk through every
    bank's hash (services/builder/secureboot) instead of holding them in memory.
    """

    def extend_digest(pcr: bytes, digest: bytes) -> bytes:
        return bank.hash(pcr + digest)

    pcr = bytes(bank.digest_size)
    for name in MEASURED_SECTIONS:
        if name in digests:
            pcr = extend_digest(pcr, bank.hash(name.encode() + b"\0"))  # systemd-stub measures the name + NUL
            pcr = extend_digest(pcr, digests[name])
    result = []
    for i, phase in enumerate(PHASES):
        pcr = extend_digest(pcr, bank.hash(phase.encode()))
        result.append((":".join(PHASES[: i + 1]), pcr))
    return result


def policy_pcr_digest(pcr_value: bytes, bank: Bank) -> bytes:
    """TPM2_PolicyPCR digest for PCR 11 from an empty SHA-256 policy session."""
    if len(pcr_value) != bank.digest_size:
        raise InvalidArgument(f"{bank} PCR value must be {bank.digest_size} bytes, got {len(pcr_value)}")
    selection = struct.pack(">IIHB", _TPM_CC_POLICY_PCR, 1, bank.tpm_alg_id, 3) + _PCR11_SELECT
    # The policy session hash is SHA-256 whatever the bank, so pcrDigest and the policy are SHA-256.
    return hashlib.sha256(bytes(32) + selection + hashlib.sha256(pcr_value).digest()).digest()


def public_key_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.sha256(der).hexdigest()


def sign_pcr_policy(key: PcrKey, bank: Bank, pcr_value: bytes) -> BankSignature:
    """Sign the policy for one predicted PCR 11 value; the policy is hashed with the bank's algorithm."""
    policy = policy_pcr_digest(pcr_value, bank)
    signature = key.sign(policy, bank.algorithm)
    return BankSignature(
        pcrs=(PCR_INDEX,),
        pkfp=public_key_fingerprint(key.public_key()),
        pol=policy.hex(),
        sig=base64.b64encode(signature).decode("ascii"),
    )


def pcrsig(key: PcrKey, sections: Mapping[str, bytes]) -> bytes:
    """The `.pcrsig` section: `{"sha256":[…],"sha384":[…],"sha512":[…]}`, compact like Go's json.Marshal."""
    entries = {}
    for bank in Bank:
        _, final = predict_pcr11(sections, bank)[-1]
        entries[bank] = sign_pcr_policy(key, bank, final)
    return encode_pcrsig(entries)


def encode_pcrsig(entries: Mapping[Bank, BankSignature]) -> bytes:
    """`.pcrsig` JSON from one entry per bank, banks in `Bank` order (Go marshals map keys sorted)."""
    body = {bank.value: [entries[bank].to_json()] for bank in Bank if bank in entries}
    return json.dumps(body, separators=(",", ":")).encode()


def section_maps(sections: Sequence[tuple[str, bytes]]) -> list[dict[str, bytes]]:
    """What each `.pcrsig` covers, given the UKI sections in file order (imager spec §6.3).

    Without `.profile` (Talos < 1.10): one map of everything. With profiles: per profile, the base
    sections (before the first `.profile`) overlaid by that profile's own sections, so a profile
    `.cmdline` replaces the base one. `.pcrsig` entries in the input are ignored.
    """
    measured = [(name, data) for name, data in sections if name != ".pcrsig"]
    starts = [i for i, (name, _) in enumerate(measured) if name == ".profile"]
    if not starts:
        return [dict(measured)]
    base = dict(measured[: starts[0]])
    ends = [*starts[1:], len(measured)]
    return [base | dict(measured[start:end]) for start, end in zip(starts, ends, strict=True)]


def verify_pcr_policy(public_key_pem: bytes, bank: Bank, pcr_value: bytes, entry: BankSignature) -> None:
    """Check an entry the way a TPM2_PolicyAuthorize caller would; raises `VerificationFailed`."""
    public_key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise VerificationFailed("PCR public key is not an RSA key")
    policy = policy_pcr_digest(pcr_value, bank)
    if entry.pol != policy.hex() or entry.pcrs != (PCR_INDEX,):
        raise VerificationFailed(f"{bank} PCR policy does not match the predicted PCR 11 value")
    if entry.pkfp != public_key_fingerprint(public_key):
        raise VerificationFailed(f"{bank} PCR signature was made with another key")
    try:
        public_key.verify(base64.b64decode(entry.sig), policy, padding.PKCS1v15(), bank.algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationFailed(f"invalid {bank} PCR policy signature") from exc
