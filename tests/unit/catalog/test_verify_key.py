"""Public-key verification: legacy `.sig` signatures and Sigstore bundles (factory spec §7.2, §13)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from services.catalog.signatures import (
    COSIGN_SIGN_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_ANNOTATION,
    LegacySignature,
    dsse_pae,
    legacy_signatures,
)
from services.catalog.verify_key import PublicKeyVerifier, parse_hash_algorithm
from services.shared.config import ConfigError
from services.shared.errors import VerificationFailed
from services.shared.oci import media_types
from services.shared.oci.manifest import Manifest
from services.shared.oci.reference import digest_of
from services.signer.cosign import simple_signing_payload

REPO = "ghcr.io/siderolabs/extensions"
DIGEST = digest_of(b"the image manifest")
OTHER_DIGEST = digest_of(b"another image manifest")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
KEYS: dict[str, Callable[[], PrivateKey]] = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


def sign(key: PrivateKey, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    return key.sign(data)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sig_manifest(payloads: list[tuple[bytes, bytes]]) -> tuple[Manifest, dict[str, bytes]]:
    """A cosign `.sig` manifest as the registry serves it, and its layer blobs."""
    layers = [
        {
            "mediaType": media_types.COSIGN_SIMPLE_SIGNING,
            "size": len(payload),
            "digest": digest_of(payload),
            "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
        }
        for payload, signature in payloads
    ]
    doc = {
        "schemaVersion": 2,
        "mediaType": media_types.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": digest_of(b"{}")},
        "layers": layers,
    }
    blobs = {digest_of(payload): payload for payload, _ in payloads}
    return Manifest.from_bytes(json.dumps(doc).encode(), media_types.OCI_MANIFEST), blobs


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- legacy simple signing -------------------------------------------------------------------


@pytest.mark.parametrize("key_kind", sorted(KEYS))
@pytest.mark.parametrize("algo", ["sha224", "sha256", "sha384", "sha512"])
def test_legacy_round_trip(key_kind: str, algo: str) -> None:
    key = KEYS[key_kind]()
    payload = simple_signing_payload(REPO, DIGEST)
    manifest, blobs = sig_manifest([(payload, sign(key, payload, parse_hash_algorithm(algo)))])
    signatures = legacy_signatures(manifest, blobs)
    PublicKeyVerifier.from_pem(public_pem(key), algo).verify_legacy(signatures, DIGEST)


def test_legacy_hash_algorithm_must_match(ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = simple_signing_payload(REPO, DIGEST)
    signature = LegacySignature(payload, sign(ec_key, payload, hashes.SHA512()))
    with pytest.raises(VerificationFailed):
        PublicKeyVerifier.from_pem(public_pem(ec_key), "sha256").verify_legacy([signature], DIGEST)


def test_legacy_rejects_wrong_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = simple_signing_payload(REPO, DIGEST)
    signature = LegacySignature(payload, sign(ec_key, payload, hashes.SHA256()))
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationFailed) as info:
        PublicKeyVerifier.from_pem(public_pem(other)).verify_legacy([signature], DIGEST)
    assert info.value.message == "no matching signatures: invalid signature when validating with the public key"


def test_legacy_rejects_tampered_payload(ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = simple_signing_payload(REPO, DIGEST)
    signature = sign(ec_key, payload, hashes.SHA256())
    tampered = payload.replace(b"siderolabs", b"evil-corp!")
    with pytest.raises(VerificationFailed):
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_legacy([LegacySignature(tampered, signature)], DIGEST)


def test_legacy_rejects_other_digest(ec_key: ec.EllipticCurvePrivateKey) -> None:
    # A valid signature, but for another image: replaying it must not vouch for this one.
    payload = simple_signing_payload(REPO, OTHER_DIGEST)
    signature = LegacySignature(payload, sign(ec_key, payload, hashes.SHA256()))
    with pytest.raises(VerificationFailed) as info:
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_legacy([signature], DIGEST)
    assert f"signature payload is for digest {OTHER_DIGEST}, expected {DIGEST}" in info.value.message


def test_legacy_rejects_non_simple_signing_payload(ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = json.dumps({"critical": {"type": "other", "image": {"docker-manifest-digest": DIGEST}}}).encode()
    signature = LegacySignature(payload, sign(ec_key, payload, hashes.SHA256()))
    with pytest.raises(VerificationFailed, match="unexpected type"):
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_legacy([signature], DIGEST)


def test_legacy_any_signature_suffices(ec_key: ec.EllipticCurvePrivateKey) -> None:
    good = simple_signing_payload(REPO, DIGEST)
    bad = simple_signing_payload(REPO, OTHER_DIGEST)
    manifest, blobs = sig_manifest(
        [(bad, sign(ec_key, bad, hashes.SHA256())), (good, sign(ec_key, good, hashes.SHA256()))]
    )
    PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_legacy(legacy_signatures(manifest, blobs), DIGEST)


def test_legacy_no_signatures(ec_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(VerificationFailed, match="no signatures found"):
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_legacy([], DIGEST)


def test_legacy_signatures_checks_blobs(ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = simple_signing_payload(REPO, DIGEST)
    manifest, blobs = sig_manifest([(payload, sign(ec_key, payload, hashes.SHA256()))])
    with pytest.raises(VerificationFailed, match="was not fetched"):
        legacy_signatures(manifest, {})
    with pytest.raises(VerificationFailed, match="does not match its digest"):
        legacy_signatures(manifest, {digest: b"swapped" for digest in blobs})


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size"), [("", 32), ("sha224", 28), (" SHA384 ", 48), ("sha512", 64)])
def test_hash_algorithm_names(name: str, size: int) -> None:
    assert parse_hash_algorithm(name).digest_size == size


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="unknown digest algorithm: md5"):
        parse_hash_algorithm("md5")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        PublicKeyVerifier.from_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


# --- bundles ---------------------------------------------------------------------------------


def statement(digest: str = DIGEST, predicate: str = COSIGN_SIGN_PREDICATE) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.removeprefix("sha256:")}, "annotations": {}}],
            "predicateType": predicate,
            "predicate": {},
        },
        separators=(",", ":"),
    ).encode()


def dsse_bundle(key: PrivateKey, payload: bytes, payload_type: str = INTOTO_PAYLOAD_TYPE) -> bytes:
    signature = sign(key, dsse_pae(payload_type, payload), hashes.SHA256())
    return json.dumps(
        {
            "mediaType": media_types.SIGSTORE_BUNDLE_V03,
            "verificationMaterial": {"publicKey": {"hint": "dGVzdA=="}},
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": payload_type,
                "signatures": [{"sig": base64.b64encode(signature).decode()}],
            },
        }
    ).encode()


def message_bundle(key: PrivateKey, digest: str) -> bytes:
    raw = bytes.fromhex(digest.removeprefix("sha256:"))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(raw, ec.ECDSA(Prehashed(hashes.SHA256())))
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(raw, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.3",
            "verificationMaterial": {"publicKey": {"hint": ""}},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(raw).decode()},
                "signature": base64.b64encode(signature).decode(),
            },
        }
    ).encode()


@pytest.mark.parametrize("key_kind", sorted(KEYS))
def test_dsse_bundle(key_kind: str) -> None:
    key = KEYS[key_kind]()
    PublicKeyVerifier.from_pem(public_pem(key)).verify_bundle(dsse_bundle(key, statement()), DIGEST)


@pytest.mark.parametrize(
    ("payload", "payload_type", "message"),
    [
        (statement(OTHER_DIGEST), INTOTO_PAYLOAD_TYPE, "invalid in-toto subject"),
        (statement(predicate="https://slsa.dev/provenance/v1"), INTOTO_PAYLOAD_TYPE, "unexpected predicate type"),
        (statement(), "application/json", "unexpected DSSE payload type"),
        (b"not json", INTOTO_PAYLOAD_TYPE, "failed to parse in-toto statement"),
        (statement().replace(b"Statement/v1", b"Statement/v0.1"), INTOTO_PAYLOAD_TYPE, "unexpected statement type"),
    ],
)
def test_dsse_bundle_statement_checks(
    ec_key: ec.EllipticCurvePrivateKey, payload: bytes, payload_type: str, message: str
) -> None:
    with pytest.raises(VerificationFailed, match=message):
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_bundle(dsse_bundle(ec_key, payload, payload_type), DIGEST)


def test_dsse_bundle_rejects_wrong_key_and_tampering(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = PublicKeyVerifier.from_pem(public_pem(ec_key))
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationFailed, match="no signature verifies"):
        verifier.verify_bundle(dsse_bundle(other, statement()), DIGEST)
    doc = json.loads(dsse_bundle(ec_key, statement()))
    doc["dsseEnvelope"]["payload"] = base64.b64encode(statement(OTHER_DIGEST)).decode()
    with pytest.raises(VerificationFailed, match="no signature verifies"):
        verifier.verify_bundle(json.dumps(doc).encode(), OTHER_DIGEST)


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (b"nope", "bundle is not JSON"),
        (b"[]", "bundle is not a JSON object"),
        (json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1"}).encode(), "media type"),
        (json.dumps({"mediaType": media_types.SIGSTORE_BUNDLE_V03}).encode(), "neither a DSSE envelope"),
    ],
)
def test_malformed_bundles(ec_key: ec.EllipticCurvePrivateKey, bundle: bytes, message: str) -> None:
    with pytest.raises(VerificationFailed, match=message):
        PublicKeyVerifier.from_pem(public_pem(ec_key)).verify_bundle(bundle, DIGEST)


@pytest.mark.parametrize("key_kind", ["ecdsa-p256", "rsa-2048"])
def test_message_signature_bundle(key_kind: str) -> None:
    key = KEYS[key_kind]()
    verifier = PublicKeyVerifier.from_pem(public_pem(key))
    verifier.verify_bundle(message_bundle(key, DIGEST), DIGEST)
    with pytest.raises(VerificationFailed, match="is not " + DIGEST):
        verifier.verify_bundle(message_bundle(key, OTHER_DIGEST), DIGEST)
    with pytest.raises(VerificationFailed, match="invalid message signature"):
        PublicKeyVerifier.from_pem(public_pem(KEYS[key_kind]())).verify_bundle(message_bundle(key, DIGEST), DIGEST)


def test_message_signature_bundle_needs_prehashable_key() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VerificationFailed, match="Ed25519"):
        PublicKeyVerifier.from_pem(public_pem(ed_key)).verify_bundle(message_bundle(ec_key, DIGEST), DIGEST)
