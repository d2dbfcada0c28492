"""KeySet loading and first-start generation."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from services.signer import keys
from services.signer.errors import SignerConfigError
from services.signer.keys import KeyPaths, KeySet, load_or_generate

_PEM = serialization.Encoding.PEM
_NO_ENC = serialization.NoEncryption()


def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path.write_bytes(key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, _NO_ENC))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_on_first_start_with_private_permissions(keyset: KeySet) -> None:
    gen_dir = keyset.cosign.path.parent
    assert gen_dir.name == "keys"
    assert mode(gen_dir) == 0o700
    files = sorted(p.name for p in gen_dir.iterdir())
    assert files == sorted(
        [keys.COSIGN_KEY_FILE, keys.SECUREBOOT_KEY_FILE, keys.SECUREBOOT_CERT_FILE, keys.PCR_KEY_FILE]
    )
    for name in files:
        assert mode(gen_dir / name) == 0o600, name
    # PKCS#1 for the RSA keys, as talosctl writes them (imager spec §1.8).
    assert keyset.pcr.path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert keyset.secureboot.key_path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert keyset.pcr.public_key().key_size == keys.PCR_RSA_BITS


def test_generated_certificate(keyset: KeySet) -> None:
    cert = keyset.secureboot.certificate
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == keys.SECUREBOOT_CN
    assert cert.issuer == cert.subject
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == keys.SECUREBOOT_RSA_BITS
    assert cert.not_valid_after_utc == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert cert.not_valid_before_utc <= datetime.now(UTC)
    assert keyset.secureboot.cert_pem() == keyset.secureboot.cert_path.read_bytes()
    assert x509.load_der_x509_certificate(keyset.secureboot.cert_der()) == cert


def test_reused_on_next_start(tmp_path: Path) -> None:
    first = load_or_generate(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    second = load_or_generate(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == before
    assert second.cosign.public_key_pem() == first.cosign.public_key_pem()
    assert second.pcr.public_key_pem() == first.pcr.public_key_pem()
    assert second.secureboot.cert_pem() == first.secureboot.cert_pem()


def test_missing_generated_cert_is_recreated(tmp_path: Path) -> None:
    first = load_or_generate(tmp_path)
    first.secureboot.cert_path.unlink()
    again = load_or_generate(tmp_path)
    assert again.secureboot.certificate.public_key() == first.secureboot.certificate.public_key()


def test_configured_paths_are_loaded_and_nothing_generated(tmp_path: Path, keyset: KeySet) -> None:
    cosign = write_key(tmp_path / "cosign.pem", ec.generate_private_key(ec.SECP256R1()))
    state = tmp_path / "state"
    loaded = load_or_generate(
        state,
        KeyPaths(
            cosign_key=cosign,
            secureboot_key=keyset.secureboot.key_path,
            secureboot_cert=keyset.secureboot.cert_path,
            pcr_key=keyset.pcr.path,
        ),
    )
    assert not state.exists()
    assert loaded.cosign.path == cosign
    assert loaded.secureboot.cert_pem() == keyset.secureboot.cert_pem()
    assert loaded.pcr.public_key_pem() == keyset.pcr.public_key_pem()


def test_mismatched_key_and_certificate(keyset: KeySet, other_keyset: KeySet, tmp_path: Path) -> None:
    paths = KeyPaths(
        secureboot_key=keyset.secureboot.key_path,
        secureboot_cert=other_keyset.secureboot.cert_path,
    )
    with pytest.raises(SignerConfigError) as info:
        load_or_generate(tmp_path, paths)
    assert info.value.message == (
        f"secure boot certificate {other_keyset.secureboot.cert_path} "
        f"does not match the signing key {keyset.secureboot.key_path}"
    )


def test_key_without_certificate(keyset: KeySet, tmp_path: Path) -> None:
    with pytest.raises(SignerConfigError, match="must be configured together"):
        load_or_generate(tmp_path, KeyPaths(secureboot_key=keyset.secureboot.key_path))


def test_unreadable_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SignerConfigError) as info:
        load_or_generate(tmp_path, KeyPaths(cosign_key=missing))
    assert info.value.message == f"cannot read cosign signing key {missing}: No such file or directory"
    with pytest.raises(SignerConfigError, match=rf"^cannot read PCR signing key {tmp_path}: Is a directory$"):
        load_or_generate(tmp_path / "state", KeyPaths(pcr_key=tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello", "is not a valid PEM private key"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not a valid PEM private key"),
    ],
)
def test_garbage_key(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    with pytest.raises(SignerConfigError, match=rf"^cosign signing key {bad} {message}$"):
        load_or_generate(tmp_path, KeyPaths(cosign_key=bad))


def test_encrypted_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = tmp_path / "enc.pem"
    enc.write_bytes(
        key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    )
    with pytest.raises(SignerConfigError, match="is encrypted"):
        load_or_generate(tmp_path, KeyPaths(cosign_key=enc))


def test_wrong_key_types(tmp_path: Path) -> None:
    rsa_key = write_key(tmp_path / "rsa.pem", rsa.generate_private_key(65537, 2048))
    p384 = write_key(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(SignerConfigError, match="must be an ECDSA P-256 key"):
        load_or_generate(tmp_path, KeyPaths(cosign_key=rsa_key))
    with pytest.raises(SignerConfigError, match="must be an ECDSA P-256 key"):
        load_or_generate(tmp_path, KeyPaths(cosign_key=p384))
    with pytest.raises(SignerConfigError, match=r"PCR signing key .* must be an RSA key"):
        load_or_generate(tmp_path, KeyPaths(pcr_key=p384))


def test_repr_never_shows_key_material(keyset: KeySet) -> None:
    text = repr(keyset)
    assert "PRIVATE" not in text
    assert "-----" not in text
    assert str(keyset.cosign.path) in text
