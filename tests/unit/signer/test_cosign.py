"""Cosign simple-signing payloads and signatures (factory spec §9.4)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from services.shared.errors import InvalidArgument, VerificationFailed
from services.signer.cosign import SignedImage, sign_cosign, simple_signing_payload, verify_cosign
from services.signer.keys import KeySet

REPO = "ghcr.io/siderolabs/image-factory/cache"
DIGEST = "sha256:" + hashlib.sha256(b"manifest").hexdigest()
OTHER_DIGEST = "sha256:" + hashlib.sha256(b"other").hexdigest()


def test_payload_exact_bytes() -> None:
    # Spelled out as in factory spec §9.4 (and byte-equal to cosign 2.5's own payload, lab REPORT §2).
    expected = (
        b'{"critical":{"identity":{"docker-reference":"ghcr.io/siderolabs/image-factory/cache"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert simple_signing_payload(REPO, DIGEST) == expected


@pytest.mark.parametrize(
    ("reference", "digest"),
    [
        ("ghcr.io/siderolabs/installer:v1.10.0", DIGEST),  # identity never carries a tag
        ("ghcr.io/Upper/case", DIGEST),
        ('ghcr.io/a"b', DIGEST),
        ("", DIGEST),
        (REPO, "sha256:abc"),
        (REPO, "sha512:" + "0" * 128),
        (REPO, DIGEST.upper()),
    ],
)
def test_payload_rejects_bad_input(reference: str, digest: str) -> None:
    with pytest.raises(InvalidArgument):
        simple_signing_payload(reference, digest)


def test_payload_accepts_registry_with_port() -> None:
    assert b'"127.0.0.1:5000/lab/good-one__x"' in simple_signing_payload("127.0.0.1:5000/lab/good-one__x", DIGEST)


def test_sign_verify_round_trip(keyset: KeySet) -> None:
    payload, signature = sign_cosign(keyset.cosign, REPO, DIGEST)
    assert payload == simple_signing_payload(REPO, DIGEST)
    der = base64.b64decode(signature, validate=True)
    r, s = decode_dss_signature(der)  # ASN.1 DER, not raw r||s
    assert r > 0 and s > 0
    public_pem = keyset.cosign.public_key_pem()
    assert verify_cosign(public_pem, payload, signature, expected_digest=DIGEST) == SignedImage(REPO, DIGEST)
    assert verify_cosign(public_pem, payload, signature) == SignedImage(REPO, DIGEST)


def test_public_key_pem_is_pkix_p256(keyset: KeySet) -> None:
    pem = keyset.cosign.public_key_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_tampered_payload_rejected(keyset: KeySet) -> None:
    payload, signature = sign_cosign(keyset.cosign, REPO, DIGEST)
    tampered = payload.replace(b'"optional":null', b'"optional":{"x":"y"}')
    with pytest.raises(VerificationFailed, match=r"^invalid cosign signature$"):
        verify_cosign(keyset.cosign.public_key_pem(), tampered, signature)


def test_wrong_key_rejected(keyset: KeySet, other_keyset: KeySet) -> None:
    payload, signature = sign_cosign(keyset.cosign, REPO, DIGEST)
    with pytest.raises(VerificationFailed, match=r"^invalid cosign signature$"):
        verify_cosign(other_keyset.cosign.public_key_pem(), payload, signature, expected_digest=DIGEST)


def test_signature_for_another_digest_rejected(keyset: KeySet) -> None:
    payload, signature = sign_cosign(keyset.cosign, REPO, OTHER_DIGEST)
    with pytest.raises(VerificationFailed, match=f"is for digest {OTHER_DIGEST}, expected {DIGEST}$"):
        verify_cosign(keyset.cosign.public_key_pem(), payload, signature, expected_digest=DIGEST)


@pytest.mark.parametrize(
    ("signature", "message"),
    [("%%%not-base64", "not valid base64"), (base64.b64encode(b"junk").decode(), "invalid cosign signature")],
)
def test_malformed_signature(keyset: KeySet, signature: str, message: str) -> None:
    payload, _ = sign_cosign(keyset.cosign, REPO, DIGEST)
    with pytest.raises(VerificationFailed, match=message):
        verify_cosign(keyset.cosign.public_key_pem(), payload, signature)


def test_bad_public_key() -> None:
    with pytest.raises(VerificationFailed, match="not a valid PEM public key"):
        verify_cosign(b"nope", b"{}", "")


def test_signed_non_cosign_document_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for payload in (b"[]", b'{"critical":{"type":"something else"}}'):
        signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        with pytest.raises(VerificationFailed, match="cosign payload"):
            verify_cosign(public_pem, payload, signature)


def test_rsa_public_keys_verify() -> None:
    # Upstream images may be signed with RSA keys (catalog `containerSignature.publicKeyFile`).
    key = rsa.generate_private_key(65537, 2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = simple_signing_payload(REPO, DIGEST)
    signature = base64.b64encode(key.sign(payload, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert verify_cosign(public_pem, payload, signature, DIGEST).digest == DIGEST
