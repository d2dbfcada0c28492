"""PCR 11 prediction and `.pcrsig` signing (imager spec §6.3)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.shared.errors import InvalidArgument, VerificationFailed
from services.shared.tools import run_tool
from services.signer.keys import KeySet
from services.signer.pcr import (
    MEASURED_SECTIONS,
    Bank,
    BankSignature,
    pcrsig,
    policy_pcr_digest,
    predict_pcr11,
    public_key_fingerprint,
    section_maps,
    sign_pcr_policy,
    verify_pcr_policy,
)

FULL_PATH = "enter-initrd:leave-initrd:enter-machined"

# Talos `internal/pkg/measure/measure_test.go` (ExpectedSignatureJSON, also what systemd-measure gives):
# every measured section present with its own name as data. `pol` does not depend on the key.
TALOS_POLICIES = {
    Bank.SHA256: "c0c4f61f8ac39267a7638cde8029b82a0ccd378b2acbfdffb77ee1f0f9d464ec",
    Bank.SHA384: "e8f6311e36f9ee038df65255ae7c471d1d1f91ce742b98a152be72337f6c937d",
    Bank.SHA512: "207a8217158f9cc521dca50358a593dc61ed9308ef27da9df4ef64d634309160",
}

# `systemd-measure calculate` (systemd 252.39, Debian 12) with each section's data = its name without
# the dot, for the sections that version knows.
SD252_SECTIONS = {f".{n}": n.encode() for n in ("linux", "osrel", "cmdline", "initrd", "splash", "dtb", "pcrpkey")}
SD252_SHA256 = [
    ("enter-initrd", "98e1e43a1a710f5b4ad30afc09e1da485b491b6b1d55e7f2185fc9eecb0d110c"),
    ("enter-initrd:leave-initrd", "517da2326100da0fb0c6b6c5835982a631ced5b0b930273ead156a86c667aa91"),
    (FULL_PATH, "da28583480dbad08e3e9bdefb88d74e020723590cba8080cb69e8e3eddddb1e9"),
]


@pytest.mark.parametrize("bank", list(Bank))
def test_policy_matches_talos_vector(bank: Bank) -> None:
    sections = {name: name.encode() for name in MEASURED_SECTIONS}
    phase, value = predict_pcr11(sections, bank)[-1]
    assert phase == FULL_PATH
    assert len(value) == bank.digest_size
    assert policy_pcr_digest(value, bank).hex() == TALOS_POLICIES[bank]


def test_prediction_matches_systemd_252_vector() -> None:
    got = [(phase, value.hex()) for phase, value in predict_pcr11(SD252_SECTIONS, Bank.SHA256)]
    assert got == SD252_SHA256


def test_unmeasured_sections_are_ignored() -> None:
    extra = SD252_SECTIONS | {".text": b"code", ".pcrsig": b"{}", ".data": b"x"}
    assert predict_pcr11(extra, Bank.SHA256) == predict_pcr11(SD252_SECTIONS, Bank.SHA256)


async def test_prediction_matches_live_systemd_measure(tmp_path: Path) -> None:
    tool = shutil.which("systemd-measure") or "/usr/lib/systemd/systemd-measure"
    if not os.access(tool, os.X_OK):
        pytest.skip("systemd-measure not installed (golden vectors above still apply)")
    sections = {f".{n}": os.urandom(100 + i) for i, n in enumerate(("linux", "osrel", "cmdline", "initrd"))}
    args = []
    for name, data in sections.items():
        (tmp_path / name[1:]).write_bytes(data)
        args.append(f"--{name[1:]}={tmp_path / name[1:]}")
    phases = [phase for phase, _ in predict_pcr11(sections, Bank.SHA256)]
    banks = [f"--bank={bank}" for bank in Bank]
    result = await run_tool([tool, "calculate", *args, *banks, *(f"--phase={p}" for p in phases), "--json=short"])
    measured = json.loads(result.stdout)
    for bank in Bank:
        expected = [(entry["phase"], entry["hash"]) for entry in measured[bank.value]]
        assert [(p, v.hex()) for p, v in predict_pcr11(sections, bank)] == expected


def test_pcrsig_format_and_signatures(keyset: KeySet) -> None:
    sections = {name: name.encode() for name in MEASURED_SECTIONS}
    raw = pcrsig(keyset.pcr, sections)
    assert b" " not in raw and not raw.endswith(b"\n")
    doc = json.loads(raw)
    assert list(doc) == ["sha256", "sha384", "sha512"]
    public_key = keyset.pcr.public_key()
    pkcs1 = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    for bank in Bank:
        (entry,) = doc[bank.value]
        assert list(entry) == ["pcrs", "pkfp", "pol", "sig"]
        assert entry["pcrs"] == [11]
        assert entry["pkfp"] == hashlib.sha256(pkcs1).hexdigest()
        assert entry["pol"] == TALOS_POLICIES[bank]
        signature = base64.b64decode(entry["sig"])
        assert len(signature) == public_key.key_size // 8
        # The policy digest is signed with the bank's hash (imager spec §6.3).
        public_key.verify(signature, bytes.fromhex(entry["pol"]), padding.PKCS1v15(), bank.algorithm)


def test_verify_pcr_policy(keyset: KeySet, other_keyset: KeySet) -> None:
    _, value = predict_pcr11(SD252_SECTIONS, Bank.SHA384)[-1]
    entry = sign_pcr_policy(keyset.pcr, Bank.SHA384, value)
    verify_pcr_policy(keyset.pcr.public_key_pem(), Bank.SHA384, value, entry)
    with pytest.raises(VerificationFailed, match="another key"):
        verify_pcr_policy(other_keyset.pcr.public_key_pem(), Bank.SHA384, value, entry)
    other_value = bytes(Bank.SHA384.digest_size)
    with pytest.raises(VerificationFailed, match="does not match the predicted"):
        verify_pcr_policy(keyset.pcr.public_key_pem(), Bank.SHA384, other_value, entry)
    forged = BankSignature(entry.pcrs, entry.pkfp, entry.pol, base64.b64encode(b"\0" * 256).decode())
    with pytest.raises(VerificationFailed, match="invalid sha384 PCR policy signature"):
        verify_pcr_policy(keyset.pcr.public_key_pem(), Bank.SHA384, value, forged)


def test_pcrpkey_is_spki_pem(keyset: KeySet) -> None:
    pem = keyset.pcr.public_key_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    assert public_key_fingerprint(key) == public_key_fingerprint(keyset.pcr.public_key())


def test_policy_rejects_wrong_length() -> None:
    with pytest.raises(InvalidArgument, match="sha512 PCR value must be 64 bytes, got 32"):
        policy_pcr_digest(bytes(32), Bank.SHA512)


def test_section_maps_without_profiles() -> None:
    sections = [(".osrel", b"o"), (".cmdline", b"c"), (".linux", b"l"), (".pcrsig", b"{}")]
    assert section_maps(sections) == [{".osrel": b"o", ".cmdline": b"c", ".linux": b"l"}]


def test_section_maps_per_profile() -> None:
    # Signed order for Talos >= 1.10 (imager spec §6.1): base, then .profile [.cmdline] .pcrsig per profile.
    sections = [
        (".sbat", b"s"), (".osrel", b"o"), (".cmdline", b"base"), (".pcrpkey", b"k"), (".linux", b"l"),
        (".initrd", b"i"), (".profile", b"ID=main"), (".pcrsig", b"{}"),
        (".profile", b"ID=reset"), (".cmdline", b"base wipe"), (".pcrsig", b"{}"),
    ]  # fmt: skip
    base = {".sbat": b"s", ".osrel": b"o", ".cmdline": b"base", ".pcrpkey": b"k", ".linux": b"l", ".initrd": b"i"}
    assert section_maps(sections) == [
        base | {".profile": b"ID=main"},
        base | {".profile": b"ID=reset", ".cmdline": b"base wipe"},
    ]
