"""The signer's key material, loaded once at startup.

Configured paths are loaded as given (factory spec §13: `cache.signingKeyPath`,
`secureBoot.file.{signingKeyPath,signingCertPath,pcrKeyPath}`). Anything not configured is generated on
first start into `<state_dir>/keys/` (dir 0700, files 0600) and reused afterwards, so a dev setup works
without flags but keeps stable keys. Private keys never leave these objects: there is no accessor for
their bytes; `sbsign` reads the key file itself (imager spec §6.4).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.signer.errors import SignerConfigError

KEYS_DIR = "keys"
COSIGN_KEY_FILE = "cosign-signing-key.pem"
SECUREBOOT_KEY_FILE = "uki-signing-key.pem"
SECUREBOOT_CERT_FILE = "uki-signing-cert.pem"
PCR_KEY_FILE = "pcr-signing-key.pem"
# Sizes follow `talosctl gen secureboot uki|pcr` (imager spec §1.8).
SECUREBOOT_RSA_BITS = 4096
PCR_RSA_BITS = 2048
SECUREBOOT_CN = "Image Factory SecureBoot"
_PEM = serialization.Encoding.PEM
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@dataclass(frozen=True)
class KeyPaths:
    """Configured key files; None means "generate into the state dir"."""

    cosign_key: Path | None = None
    secureboot_key: Path | None = None
    secureboot_cert: Path | None = None
    pcr_key: Path | None = None


class CosignKey:
    """ECDSA P-256 key signing cosign simple-signing payloads (factory spec §9.4)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        self._key = key
        self.path = path

    def sign(self, payload: bytes) -> bytes:
        """ASN.1 DER ECDSA signature over SHA-256(payload), as cosign `SignMessage`."""
        return self._key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> bytes:
        """PKIX `PUBLIC KEY` PEM served at `/oci/cosign/signing-key.pub` (factory spec §2.10)."""
        return self._key.public_key().public_bytes(_PEM, _SPKI)

    def __repr__(self) -> str:
        return f"CosignKey(path={self.path})"


class SecureBootKey:
    """Authenticode key + certificate. Only paths are kept: `sbsign` reads them (imager spec §6.4)."""

    def __init__(self, key_path: Path, cert_path: Path, certificate: x509.Certificate) -> None:
        self.key_path = key_path
        self.cert_path = cert_path
        self.certificate = certificate

    def cert_pem(self) -> bytes:
        """Body of `/secureboot/signing-cert.pem` (factory spec §2.9)."""
        return self.certificate.public_bytes(_PEM)

    def cert_der(self) -> bytes:
        """`EFI/keys/uki-signing-cert.der` in Secure Boot ISOs (imager spec §6.6)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def __repr__(self) -> str:
        return f"SecureBootKey(key_path={self.key_path}, cert_path={self.cert_path})"


class PcrKey:
    """RSA key signing the PCR 11 policy in `.pcrsig` (imager spec §6.3)."""

    def __init__(self, key: rsa.RSAPrivateKey, path: Path) -> None:
        self._key = key
        self.path = path

    def sign(self, message: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """RSASSA-PKCS1-v1_5 over `algorithm(message)`."""
        return self._key.sign(message, padding.PKCS1v15(), algorithm)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def public_key_pem(self) -> bytes:
        """The `.pcrpkey` UKI section: SubjectPublicKeyInfo PEM (imager spec §6.1)."""
        return self._key.public_key().public_bytes(_PEM, _SPKI)

    def __repr__(self) -> str:
        return f"PcrKey(path={self.path})"


@dataclass(frozen=True)
class KeySet:
    cosign: CosignKey
    secureboot: SecureBootKey
    pcr: PcrKey


def load_or_generate(state_dir: Path, paths: KeyPaths | None = None) -> KeySet:
    """Load configured keys, generate the rest. Raises `SignerConfigError` naming the bad path.

    Meant for the one signer process at startup; two processes generating into one state dir at the
    same moment could each write a different key (the last rename wins).
    """
    paths = paths or KeyPaths()
    gen_dir = state_dir / KEYS_DIR
    cosign_path = paths.cosign_key or gen_dir / COSIGN_KEY_FILE
    cosign, _ = _key(
        cosign_path, "cosign signing key", paths.cosign_key is None, lambda: ec.generate_private_key(ec.SECP256R1())
    )
    if not (isinstance(cosign, ec.EllipticCurvePrivateKey) and isinstance(cosign.curve, ec.SECP256R1)):
        raise SignerConfigError(f"cosign signing key {cosign_path} must be an ECDSA P-256 key")
    pcr_path = paths.pcr_key or gen_dir / PCR_KEY_FILE
    pcr, _ = _rsa_key(pcr_path, "PCR signing key", paths.pcr_key is None, PCR_RSA_BITS)
    return KeySet(CosignKey(cosign, cosign_path), _secureboot(gen_dir, paths), PcrKey(pcr, pcr_path))


def _secureboot(gen_dir: Path, paths: KeyPaths) -> SecureBootKey:
    if (paths.secureboot_key is None) != (paths.secureboot_cert is None):
        raise SignerConfigError("secure boot signing key and certificate must be configured together")
    key_path = paths.secureboot_key or gen_dir / SECUREBOOT_KEY_FILE
    cert_path = paths.secureboot_cert or gen_dir / SECUREBOOT_CERT_FILE
    generate = paths.secureboot_key is None
    key, created = _rsa_key(key_path, "secure boot signing key", generate, SECUREBOOT_RSA_BITS)
    if generate and (created or not cert_path.exists()):
        _write_private(cert_path, _self_signed_cert(key).public_bytes(_PEM))
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path, "secure boot certificate"))
    except ValueError as exc:
        raise SignerConfigError(f"secure boot certificate {cert_path} is not a PEM certificate") from exc
    if cert.public_key().public_bytes(_PEM, _SPKI) != key.public_key().public_bytes(_PEM, _SPKI):
        raise SignerConfigError(f"secure boot certificate {cert_path} does not match the signing key {key_path}")
    return SecureBootKey(key_path, cert_path, cert)


def _rsa_key(path: Path, what: str, generate: bool, bits: int) -> tuple[rsa.RSAPrivateKey, bool]:
    key, created = _key(path, what, generate, lambda: rsa.generate_private_key(65537, bits))
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise SignerConfigError(f"{what} {path} must be an RSA key of at least 2048 bits")
    return key, created


def _key(path: Path, what: str, generate: bool, new: Callable[[], PrivateKeyTypes]) -> tuple[PrivateKeyTypes, bool]:
    """Load `path`, or when it is ours to generate and absent, create it. Returns (key, created)."""
    if generate and not path.exists():
        key = new()
        # PKCS#1 `RSA PRIVATE KEY` for RSA as talosctl writes it (imager spec §1.8); PKCS#8 otherwise.
        fmt = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if isinstance(key, rsa.RSAPrivateKey)
            else serialization.PrivateFormat.PKCS8
        )
        _write_private(path, key.private_bytes(_PEM, fmt, serialization.NoEncryption()))
        return key, True
    data = _read(path, what)
    try:
        return serialization.load_pem_private_key(data, password=None), False
    except TypeError as exc:  # cryptography's signal for "encrypted, no password given"
        raise SignerConfigError(f"{what} {path} is encrypted; only unencrypted PEM keys are supported") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignerConfigError(f"{what} {path} is not a valid PEM private key") from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SignerConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with 0600 in a 0700 directory, so a crash never leaves half a key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode otherwise
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _self_signed_cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Self-signed code-signing certificate, enrolled as PK/KEK/db (imager spec §6.5).

    Deterministic given the key and the day: serial from the key hash, validity from midnight UTC to
    the RFC 5280 "no expiry" date (firmware ignores validity; the key must outlive every image).
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SECUREBOOT_CN)])
    spki = key.public_key().public_bytes(serialization.Encoding.DER, _SPKI)
    serial = int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1 or 1
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(today)
        .not_valid_after(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
)  # fmt: skip
