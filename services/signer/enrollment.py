"""Secure Boot enrollment databases: PK, KEK and db as signed `.auth` files (imager spec §6.5).

Each variable is one or more EFI_SIGNATURE_LISTs of X.509 certificates, wrapped into a time-based
authenticated variable (UEFI 2.10 §8.2.2, EFI_VARIABLE_AUTHENTICATION_2) as `systemd-boot` expects it in
`loader/keys/auto/{PK,KEK,db}.auth` (imager spec §5.3, §6.6): EFI_TIME, a WIN_CERTIFICATE_UEFI_GUID holding a
detached PKCS#7 SignedData over `name ‖ vendor GUID ‖ attributes ‖ time ‖ lists`, then the lists.

All three are signed by the Secure Boot (UKI) signing key, whose self-signed certificate is also the PK
(Talos `database.Generate`). Deliberate deviation (imager spec §14.2): the signature lists carry the
certificate as **DER**. Talos stores the PEM text; firmware (edk2 `X509ConstructCertificate`) only parses DER, so
a PEM db never authorizes anything. The owner GUID is still derived from the PEM bytes, as in Talos.

Pure domain code in the signer process: the private key is read from the configured key file here and
never leaves this module (like `sbsign` reading it, services/signer/pe.py).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from services.shared.errors import Internal, NotEnabled
from services.signer.errors import SignerConfigError
from services.signer.keys import KeySet

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
EFI_CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
EFI_CERT_TYPE_PKCS7 = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
# Owner of the well-known certificates (Talos `microsoftSignatureOwnerGUID`, §6.5).
MICROSOFT_OWNER = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")

# NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS: what
# systemd-boot passes to SetVariable when it enrolls, so the signed attributes must be exactly these.
ATTRIBUTES = 0x01 | 0x02 | 0x04 | 0x20
WIN_CERT_REVISION = 0x0200
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
_WIN_CERT_HEADER = 8 + 16  # dwLength, wRevision, wCertificateType, CertType
_ESL_HEADER = 16 + 4 + 4 + 4  # SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize
_SHA256_OID = bytes.fromhex("608648016503040201")
_CERT_SUFFIXES = (".der", ".cer", ".crt", ".pem")


class Variable(StrEnum):
    """The three enrollment variables; the value is the UEFI variable name."""

    PK = "PK"
    KEK = "KEK"
    DB = "db"

    @property
    def vendor_guid(self) -> uuid.UUID:
        return EFI_IMAGE_SECURITY_DATABASE if self is Variable.DB else EFI_GLOBAL_VARIABLE

    @property
    def file_name(self) -> str:
        """`loader/keys/auto/<name>` (imager spec §5.3)."""
        return f"{self.value}.auth"


@dataclass(frozen=True)
class SignatureEntry:
    """One EFI_SIGNATURE_DATA of type EFI_CERT_X509: owner GUID and DER certificate."""

    owner: uuid.UUID
    certificate: bytes


@dataclass(frozen=True)
class WellKnownCertificates:
    """Microsoft's KEK and db certificates (DER), added with `includeWellKnownCertificates` (§6.5).

    They cannot be fetched at build time, so the signer is configured with a directory holding `kek/` and
    `db/` (`.der`/`.cer`/`.crt`/`.pem`, one certificate per file, taken in file name order like Talos'
    embedded `certs/{kek,db}`). Talos ships KEK: Microsoft Corporation KEK CA 2011 and KEK 2K CA 2023;
    db: Microsoft UEFI CA 2023 and Microsoft Option ROM UEFI CA 2023.
    """

    kek: tuple[bytes, ...]
    db: tuple[bytes, ...]

    @classmethod
    def load(cls, directory: Path) -> WellKnownCertificates:
        certs = cls(_load_dir(directory / "kek"), _load_dir(directory / "db"))
        if not certs.kek or not certs.db:
            raise SignerConfigError(f"well-known certificate directory {directory} needs kek/ and db/ certificates")
        return certs


@dataclass(frozen=True)
class EnrollmentDatabases:
    """The signed variables, keyed by file name (`PK.auth`, `KEK.auth`, `db.auth`)."""

    pk: bytes
    kek: bytes
    db: bytes

    def files(self) -> dict[str, bytes]:
        return {
            Variable.PK.file_name: self.pk,
            Variable.KEK.file_name: self.kek,
            Variable.DB.file_name: self.db,
        }


def owner_guid(certificate_pem: bytes) -> uuid.UUID:
    """Talos' owner GUID: Go `uuid.NewHash(sha256.New(), NameSpaceX500, pem, 4)` (§6.5)."""
    digest = bytearray(hashlib.sha256(uuid.NAMESPACE_X500.bytes + certificate_pem).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # version nibble 4, whatever the hash
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(digest))


def signature_lists(entries: Iterable[SignatureEntry]) -> bytes:
    """EFI_SIGNATURE_LISTs, one per certificate (X.509 entries differ in size, and a list's entries can't)."""
    out = bytearray()
    for entry in entries:
        size = 16 + len(entry.certificate)
        out += EFI_CERT_X509.bytes_le + struct.pack("<III", _ESL_HEADER + size, 0, size)
        out += entry.owner.bytes_le + entry.certificate
    return bytes(out)


def efi_time(moment: datetime) -> bytes:
    """EFI_TIME in UTC with Pad1, Nanosecond, TimeZone, Daylight and Pad2 zero, as §8.2.2 requires."""
    t = moment.astimezone(UTC)
    return struct.pack("<HBBBBBBIhBB", t.year, t.month, t.day, t.hour, t.minute, t.second, 0, 0, 0, 0, 0)


def signed_payload(variable: Variable, timestamp: bytes, data: bytes) -> bytes:
    """What the PKCS#7 signature covers: name (UTF-16LE, no NUL) ‖ vendor GUID ‖ attributes ‖ time ‖ data."""
    name = variable.value.encode("utf-16-le")
    return name + variable.vendor_guid.bytes_le + struct.pack("<I", ATTRIBUTES) + timestamp + data


def authenticated_variable(timestamp: bytes, signed_data: bytes, data: bytes) -> bytes:
    """EFI_VARIABLE_AUTHENTICATION_2 followed by the variable data: the `.auth` file."""
    header = struct.pack("<IHH", _WIN_CERT_HEADER + len(signed_data), WIN_CERT_REVISION, WIN_CERT_TYPE_EFI_GUID)
    return timestamp + header + EFI_CERT_TYPE_PKCS7.bytes_le + signed_data + data


@dataclass(frozen=True)
class _SigningKey:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def sign(self, payload: bytes) -> bytes:
        """Detached SHA-256 PKCS#7 SignedData (without the ContentInfo wrapper) over `payload`."""
        content_info = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(payload)
            .add_signer(self.certificate, self.key, hashes.SHA256())
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoAttributes],
            )
        )
        return _check_signed_data(_content_of_content_info(content_info))


def enrollment_databases(
    keys: KeySet,
    *,
    include_well_known: bool = False,
    well_known: WellKnownCertificates | None = None,
    timestamp: datetime | None = None,
) -> EnrollmentDatabases:
    """PK, KEK and db enrolling our Secure Boot certificate, each signed by our Secure Boot key (§6.5).

    `include_well_known` appends `well_known` to KEK and db under Microsoft's owner GUID; asking for it on a
    signer configured without them is a `NotEnabled` error. `timestamp` defaults to now (Talos uses the
    current time; §13 lists it as not normalized).
    """
    if include_well_known and well_known is None:
        raise NotEnabled("well-known (Microsoft) Secure Boot certificates are not configured on this factory")
    signing = _signing_key(keys)
    own = SignatureEntry(owner_guid(keys.secureboot.cert_pem()), keys.secureboot.cert_der())
    extra_kek: Sequence[bytes] = well_known.kek if include_well_known and well_known else ()
    extra_db: Sequence[bytes] = well_known.db if include_well_known and well_known else ()
    moment = efi_time(timestamp or datetime.now(UTC))

    def signed(variable: Variable, extra: Sequence[bytes]) -> bytes:
        data = signature_lists([own, *(SignatureEntry(MICROSOFT_OWNER, cert) for cert in extra)])
        return authenticated_variable(moment, signing.sign(signed_payload(variable, moment, data)), data)

    return EnrollmentDatabases(
        pk=signed(Variable.PK, ()),
        kek=signed(Variable.KEK, extra_kek),
        db=signed(Variable.DB, extra_db),
    )


def _signing_key(keys: KeySet) -> _SigningKey:
    path = keys.secureboot.key_path
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignerConfigError(f"cannot load secure boot signing key {path}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignerConfigError(f"secure boot signing key {path} must be an RSA key")
    return _SigningKey(keys.secureboot.certificate, key)


def _load_dir(directory: Path) -> tuple[bytes, ...]:
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in _CERT_SUFFIXES)
    except OSError as exc:
        raise SignerConfigError(f"cannot read well-known certificates in {directory}: {exc.strerror}") from exc
    return tuple(_der_certificate(path) for path in files)


def _der_certificate(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignerConfigError(f"{path} is not an X.509 certificate") from exc
    return cert.public_bytes(serialization.Encoding.DER)


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """One DER element at `offset`: (tag, start of contents, end of contents)."""
    tag, first = data[offset], data[offset + 1]
    start = offset + 2
    if first < 0x80:
        return tag, start, start + first
    count = first & 0x7F
    length = int.from_bytes(data[start : start + count], "big")
    return tag, start + count, start + count + length


def _content_of_content_info(der: bytes) -> bytes:
    """`ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }` → the SignedData element.

    UEFI wants the bare SignedData in CertData; edk2 even checks its layout (below)."""
    tag, start, _ = _tlv(der, 0)
    oid_tag, _, oid_end = _tlv(der, start)
    explicit_tag, inner, inner_end = _tlv(der, oid_end)
    if (tag, oid_tag, explicit_tag) != (0x30, 0x06, 0xA0):
        raise Internal("unexpected PKCS#7 ContentInfo layout from cryptography")
    return der[inner:inner_end]


def _check_signed_data(signed_data: bytes) -> bytes:
    """edk2 `VerifyTimeBasedPayload` rejects anything but a SEQUENCE with a two-byte length whose first
    digestAlgorithm OID (at byte 13) is SHA-256; fail here rather than in firmware."""
    if signed_data[:2] != b"\x30\x82" or signed_data[13 : 13 + len(_SHA256_OID)] != _SHA256_OID:
        raise Internal("PKCS#7 SignedData does not have the layout UEFI firmware accepts")
    return signed_data
