"""Enrollment databases: signature lists and time-based authenticated variables (imager spec §6.5).

Byte layouts are parsed here by hand (UEFI 2.10 §8.2.2, §32.4.1); sbsigntool is the independent
producer where installed, and openssl the independent PKCS#7 verifier.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.shared.errors import NotEnabled
from services.signer.enrollment import (
    ATTRIBUTES,
    MICROSOFT_OWNER,
    EnrollmentDatabases,
    SignatureEntry,
    Variable,
    WellKnownCertificates,
    efi_time,
    enrollment_databases,
    owner_guid,
    signature_lists,
)
from services.signer.errors import SignerConfigError
from services.signer.keys import KeySet
from tests.support.real_tools import require_tools

MOMENT = datetime(2026, 11, 26, 6, 43, 26, tzinfo=UTC)
X509_GUID_LE = bytes.fromhex("a159c0a5e494a74a87b5ab155c2bf072")  # a5c059a1-94e4-4aa7-87b5-ab155c2bf072
PKCS7_GUID_LE = bytes.fromhex("9dd2af4adf68ee498aa9347d375665a7")  # 4aafd29d-68df-49ee-8aa9-347d375665a7
GLOBAL_GUID_LE = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")  # 8be4df61-93ca-11d2-aa0d-00e098032b8c
DB_GUID_LE = bytes.fromhex("cbb219d73a3d9645a3bcdad00e67656f")  # d719b2cb-3d3a-4596-a3bc-dad00e67656f


@pytest.fixture(scope="module")
def databases(sb_keys: KeySet) -> EnrollmentDatabases:
    return enrollment_databases(sb_keys, timestamp=MOMENT)


def parse_lists(data: bytes) -> list[tuple[bytes, list[tuple[uuid.UUID, bytes]]]]:
    """EFI_SIGNATURE_LISTs → [(type GUID bytes, [(owner, data)])]."""
    out, offset = [], 0
    while offset < len(data):
        sig_type = data[offset : offset + 16]
        list_size, header_size, sig_size = struct.unpack_from("<III", data, offset + 16)
        body = offset + 28 + header_size
        entries = []
        for start in range(body, offset + list_size, sig_size):
            entries.append((uuid.UUID(bytes_le=data[start : start + 16]), data[start + 16 : start + sig_size]))
        out.append((sig_type, entries))
        offset += list_size
    assert offset == len(data)
    return out


def parse_auth(data: bytes) -> tuple[bytes, bytes, bytes]:
    """`.auth` → (EFI_TIME, SignedData, variable data), checking the WIN_CERTIFICATE_UEFI_GUID header."""
    length, revision, cert_type = struct.unpack_from("<IHH", data, 16)
    assert (revision, cert_type) == (0x0200, 0x0EF1)
    assert data[24:40] == PKCS7_GUID_LE
    return data[:16], data[40 : 16 + length], data[16 + length :]


def test_variables() -> None:
    assert [v.file_name for v in Variable] == ["PK.auth", "KEK.auth", "db.auth"]
    assert Variable.PK.vendor_guid.bytes_le == GLOBAL_GUID_LE == Variable.KEK.vendor_guid.bytes_le
    assert Variable.DB.vendor_guid.bytes_le == DB_GUID_LE
    assert ATTRIBUTES == 0x27


def test_owner_guid_is_go_newhash_sha256_over_the_pem() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    # uuid.NewHash: SHA-256(namespace ‖ data), first 16 bytes, version 4 in the top nibble of byte 6,
    # variant 10 in the top bits of byte 8.
    raw = int.from_bytes(hashlib.sha256(uuid.NAMESPACE_X500.bytes + pem).digest()[:16], "big")
    raw = (raw & ~(0xF << 76) | (0x4 << 76)) & ~(0x3 << 62) | (0x2 << 62)
    got = owner_guid(pem)
    assert got == uuid.UUID(int=raw)
    assert got.version == 4 and got.variant == uuid.RFC_4122
    assert owner_guid(pem + b"\n") != got


def test_efi_time_layout() -> None:
    assert efi_time(MOMENT) == struct.pack("<HBBBBB", 2026, 11, 26, 6, 43, 26) + bytes(9)
    # Always UTC: the TimeZone field must stay 0 for EFI_VARIABLE_AUTHENTICATION_2.
    assert efi_time(MOMENT.astimezone(timezone(timedelta(hours=5)))) == efi_time(MOMENT)


def test_signature_lists_one_list_per_certificate() -> None:
    owner = uuid.UUID("11111111-2222-4333-8444-555555555555")
    data = signature_lists([SignatureEntry(owner, b"A" * 10), SignatureEntry(MICROSOFT_OWNER, b"B" * 7)])
    assert data[:16] == X509_GUID_LE
    assert struct.unpack_from("<III", data, 16) == (28 + 16 + 10, 0, 16 + 10)
    assert parse_lists(data) == [
        (X509_GUID_LE, [(owner, b"A" * 10)]),
        (X509_GUID_LE, [(MICROSOFT_OWNER, b"B" * 7)]),
    ]


def test_databases_enroll_our_der_certificate(sb_keys: KeySet, databases: EnrollmentDatabases) -> None:
    expected_owner = owner_guid(sb_keys.secureboot.cert_pem())
    for variable, auth in zip(Variable, (databases.pk, databases.kek, databases.db), strict=True):
        timestamp, signed_data, data = parse_auth(auth)
        assert timestamp == efi_time(MOMENT)
        # DER, not Talos' PEM: edk2 refuses a PEM "certificate" in db (imager spec §14.2, checked in OVMF).
        assert parse_lists(data) == [(X509_GUID_LE, [(expected_owner, sb_keys.secureboot.cert_der())])]
        assert signed_data[:2] == b"\x30\x82", variable
    assert databases.files() == {"PK.auth": databases.pk, "KEK.auth": databases.kek, "db.auth": databases.db}


def _signed_payload(variable: Variable, auth: bytes) -> bytes:
    timestamp, _, data = parse_auth(auth)
    guid = GLOBAL_GUID_LE if variable is not Variable.DB else DB_GUID_LE
    return variable.value.encode("utf-16-le") + guid + struct.pack("<I", 0x27) + timestamp + data


@pytest.mark.parametrize("variable", list(Variable))
def test_signature_covers_name_guid_attributes_time_and_data(
    sb_keys: KeySet, databases: EnrollmentDatabases, variable: Variable
) -> None:
    auth = databases.files()[variable.file_name]
    _, signed_data, _ = parse_auth(auth)
    key = serialization.load_pem_private_key(sb_keys.secureboot.key_path.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    # No signed attributes, so the RSA signature is PKCS#1 v1.5 over SHA-256(payload), deterministic.
    expected = key.sign(_signed_payload(variable, auth), padding.PKCS1v15(), hashes.SHA256())
    assert signed_data.endswith(expected)
    # The signer certificate travels in the SignedData (edk2 matches it against PK/KEK, or the new PK).
    assert sb_keys.secureboot.cert_der() in signed_data


@pytest.mark.parametrize("variable", list(Variable))
def test_openssl_verifies_the_detached_signature(
    sb_keys: KeySet, databases: EnrollmentDatabases, variable: Variable, tmp_path: Path
) -> None:
    require_tools("openssl")
    auth = databases.files()[variable.file_name]
    _, signed_data, _ = parse_auth(auth)
    # Re-wrap as ContentInfo (OID signedData, [0] EXPLICIT) for openssl; UEFI stores the bare SignedData.
    oid = bytes.fromhex("06092a864886f70d010702")
    explicit = b"\xa0\x82" + len(signed_data).to_bytes(2, "big") + signed_data
    body = oid + explicit
    (tmp_path / "sig.der").write_bytes(b"\x30\x82" + len(body).to_bytes(2, "big") + body)
    (tmp_path / "payload").write_bytes(_signed_payload(variable, auth))
    argv = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.der", "-content", "payload",
            "-CAfile", str(sb_keys.secureboot.cert_path), "-purpose", "any", "-out", "/dev/null"]  # fmt: skip
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "payload").write_bytes(_signed_payload(variable, auth) + b"x")
    assert subprocess.run(argv, cwd=tmp_path, capture_output=True, check=False).returncode != 0


def test_signature_lists_match_sbsiglist(sb_keys: KeySet, tmp_path: Path) -> None:
    """sbsigntool's `sbsiglist` writes the same EFI_SIGNATURE_LIST for our certificate and owner."""
    require_tools("sbsiglist")
    owner = owner_guid(sb_keys.secureboot.cert_pem())
    (tmp_path / "cert.der").write_bytes(sb_keys.secureboot.cert_der())
    subprocess.run(
        ["sbsiglist", "--owner", str(owner), "--type", "x509", "--output", "cert.esl", "cert.der"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    assert (
        signature_lists([SignatureEntry(owner, sb_keys.secureboot.cert_der())]) == (tmp_path / "cert.esl").read_bytes()
    )


def test_auth_layout_matches_sbvarsign(sb_keys: KeySet, databases: EnrollmentDatabases, tmp_path: Path) -> None:
    """`sbvarsign` (another producer) gives the same header shape and the same trailing data."""
    require_tools("sbvarsign")
    ours = databases.db
    _, _, esl = parse_auth(ours)
    (tmp_path / "db.esl").write_bytes(esl)
    argv = ["sbvarsign", "--key", str(sb_keys.secureboot.key_path), "--cert", str(sb_keys.secureboot.cert_path),
            "--output", "db.auth", "db", "db.esl"]  # fmt: skip
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    _, theirs_signed, theirs_esl = parse_auth((tmp_path / "db.auth").read_bytes())
    assert theirs_esl == esl
    _, ours_signed, _ = parse_auth(ours)
    assert theirs_signed[:2] == ours_signed[:2] == b"\x30\x82"
    assert theirs_signed[4:24] == ours_signed[4:24]  # version, digestAlgorithms {sha256}, contentInfo start


def _write_cert_dir(root: Path, keys: KeySet, other: KeySet) -> None:
    (root / "kek").mkdir(parents=True)
    (root / "db").mkdir()
    (root / "kek" / "b.pem").write_bytes(b"Certificate:\n    Data: ...\n" + other.secureboot.cert_pem())
    (root / "kek" / "a.der").write_bytes(keys.secureboot.cert_der())
    (root / "kek" / "README").write_text("not a certificate\n")
    (root / "db" / "x.crt").write_bytes(other.secureboot.cert_der())


def test_well_known_certificates_load_sorted_der_and_pem(
    sb_keys: KeySet, other_sb_keys: KeySet, tmp_path: Path
) -> None:
    _write_cert_dir(tmp_path, sb_keys, other_sb_keys)
    loaded = WellKnownCertificates.load(tmp_path)
    assert loaded.kek == (sb_keys.secureboot.cert_der(), other_sb_keys.secureboot.cert_der())
    assert loaded.db == (other_sb_keys.secureboot.cert_der(),)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "cannot read well-known certificates"),
        ({"kek/a.der": b"", "db/b.der": b"junk"}, "is not an X.509 certificate"),
        ({"kek/README": b"x", "db/README": b"y"}, "needs kek/ and db/ certificates"),
    ],
)
def test_bad_well_known_directories(tmp_path: Path, layout: dict[str, bytes], message: str) -> None:
    for rel, data in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    with pytest.raises(SignerConfigError, match=message):
        WellKnownCertificates.load(tmp_path)


def test_well_known_certificates_go_to_kek_and_db_only(
    sb_keys: KeySet, other_sb_keys: KeySet, databases: EnrollmentDatabases
) -> None:
    ms = WellKnownCertificates(kek=(b"K1", b"K2"), db=(other_sb_keys.secureboot.cert_der(),))
    with_ms = enrollment_databases(sb_keys, include_well_known=True, well_known=ms, timestamp=MOMENT)
    own = (owner_guid(sb_keys.secureboot.cert_pem()), sb_keys.secureboot.cert_der())
    assert [e for _, es in parse_lists(parse_auth(with_ms.pk)[2]) for e in es] == [own]
    assert [e for _, es in parse_lists(parse_auth(with_ms.kek)[2]) for e in es] == [
        own, (MICROSOFT_OWNER, b"K1"), (MICROSOFT_OWNER, b"K2"),
    ]  # fmt: skip
    assert [e for _, es in parse_lists(parse_auth(with_ms.db)[2]) for e in es] == [
        own, (MICROSOFT_OWNER, other_sb_keys.secureboot.cert_der()),
    ]  # fmt: skip
    # Configured but not asked for: nothing extra.
    plain = enrollment_databases(sb_keys, include_well_known=False, well_known=ms, timestamp=MOMENT)
    assert plain.kek == databases.kek


def test_well_known_requested_but_not_configured(sb_keys: KeySet) -> None:
    with pytest.raises(NotEnabled, match=r"well-known .* not configured"):
        enrollment_databases(sb_keys, include_well_known=True)


def test_microsoft_certificates_from_virt_firmware(sb_keys: KeySet, tmp_path: Path) -> None:
    """The set Talos embeds, taken from PyPI virt-firmware's PEM files (test-only; the factory is configured
    with a directory)."""
    virt = pytest.importorskip("virt.firmware", reason="virt-firmware (test-only) is not installed")
    certs = Path(next(iter(virt.__path__))) / "certs" / "microsoft.com"
    for sub, names in {"kek": ("ms-kek-2011", "ms-kek-2023"), "db": ("ms-uefi-2023", "ms-uefi-rom-2023")}.items():
        (tmp_path / sub).mkdir()
        for name in names:
            shutil.copyfile(certs / f"{name}.pem", tmp_path / sub / f"{name}.pem")
    ms = WellKnownCertificates.load(tmp_path)
    subjects = [x509.load_der_x509_certificate(c).subject.rfc4514_string() for c in (*ms.kek, *ms.db)]
    assert [s.split(",")[0] for s in subjects] == [
        "CN=Microsoft Corporation KEK CA 2011",
        "CN=Microsoft Corporation KEK 2K CA 2023",
        "CN=Microsoft UEFI CA 2023",
        "CN=Microsoft Option ROM UEFI CA 2023",
    ]
    db = enrollment_databases(sb_keys, include_well_known=True, well_known=ms, timestamp=MOMENT).db
    assert len(parse_lists(parse_auth(db)[2])) == 3
