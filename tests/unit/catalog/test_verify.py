"""The configured verifier: options in order, bundle before legacy, one joined error (factory spec §7.2)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.catalog.signatures import LegacySignature, SignatureMaterial
from services.catalog.verify import Method, SignatureConfig, Verification, VerificationCache, Verifier
from services.shared.errors import InvalidArgument, VerificationFailed
from services.shared.oci.reference import digest_of
from services.signer.cosign import simple_signing_payload
from tests.unit.catalog.fake_sigstore import FakeSigstore
from tests.unit.catalog.test_verify_key import dsse_bundle, statement

pytestmark = pytest.mark.usefixtures("offline")

DIGEST = digest_of(b"the image manifest")
REF = f"ghcr.io/siderolabs/extensions@{DIGEST}"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def legacy(key: ec.EllipticCurvePrivateKey, digest: str = DIGEST) -> LegacySignature:
    payload = simple_signing_payload("ghcr.io/siderolabs/extensions", digest)
    return LegacySignature(payload, key.sign(payload, ec.ECDSA(hashes.SHA256())))


def test_public_key_legacy(key: ec.EllipticCurvePrivateKey) -> None:
    verifier = Verifier.from_config(SignatureConfig(public_key_pem=pem(key), subject_regexp=""))
    assert verifier.verify(REF, DIGEST, SignatureMaterial(legacy=(legacy(key),))) == Verification(
        DIGEST, Method.LEGACY_KEY
    )


def test_bundle_tried_before_legacy_and_key_before_keyless(key: ec.EllipticCurvePrivateKey) -> None:
    verifier = Verifier.from_config(SignatureConfig(public_key_pem=pem(key)))
    material = SignatureMaterial(bundles=(dsse_bundle(key, statement(DIGEST)),), legacy=(legacy(key),))
    assert verifier.verify(REF, DIGEST, material).method is Method.BUNDLED_KEY


def test_keyless_after_key_fails(key: ec.EllipticCurvePrivateKey, real_bundle: bytes, catalog_digest: str) -> None:
    verifier = Verifier.from_config(SignatureConfig(public_key_pem=pem(key)))
    result = verifier.verify(
        f"ghcr.io/siderolabs/extensions@{catalog_digest}", catalog_digest, SignatureMaterial((real_bundle,))
    )
    assert result.method is Method.BUNDLED_KEYLESS


def test_legacy_keyless_with_configured_root() -> None:
    sigstore = FakeSigstore()
    config = SignatureConfig(trusted_root_json=sigstore.trusted_root_json())
    payload = simple_signing_payload("ghcr.io/siderolabs/extensions", DIGEST)
    material = SignatureMaterial(bundles=(b"{}",), legacy=(sigstore.legacy_signature(payload),))
    assert Verifier.from_config(config).verify(REF, DIGEST, material).method is Method.LEGACY_KEYLESS


def test_all_errors_joined_in_one_line(key: ec.EllipticCurvePrivateKey) -> None:
    verifier = Verifier.from_config(SignatureConfig(public_key_pem=pem(key)))
    with pytest.raises(VerificationFailed) as info:
        verifier.verify(REF, DIGEST, SignatureMaterial())
    assert info.value.message == (
        f"failed to verify image signature for {REF}: "
        "bundled (public key): no sigstore bundle referrers found; legacy (public key): no signatures found; "
        "bundled (keyless): no sigstore bundle referrers found; legacy (keyless): no signatures found"
    )


def test_errors_name_each_failed_check(key: ec.EllipticCurvePrivateKey, real_bundle: bytes) -> None:
    verifier = Verifier.from_config(SignatureConfig(public_key_pem=pem(key)))
    other = ec.generate_private_key(ec.SECP256R1())
    material = SignatureMaterial(bundles=(real_bundle,), legacy=(legacy(other),))
    with pytest.raises(VerificationFailed) as info:
        verifier.verify(REF, DIGEST, material)
    message = info.value.message
    assert "\n" not in message
    assert "bundled (public key): DSSE envelope: no signature verifies with the public key" in message
    assert "legacy (public key): no matching signatures: invalid signature" in message
    assert "bundled (keyless): invalid in-toto subject" in message
    assert "legacy (keyless): no matching signatures: signature has no certificate" in message


def test_no_options() -> None:
    with pytest.raises(VerificationFailed, match="no verification options provided"):
        Verifier.from_config(SignatureConfig(subject_regexp="  ")).verify(REF, DIGEST, SignatureMaterial())


def test_disabled() -> None:
    result = Verifier.from_config(SignatureConfig(disabled=True)).verify(REF, DIGEST, SignatureMaterial())
    assert result == Verification(DIGEST, Method.DISABLED)
    assert not result.verified


def test_digest_must_be_sha256() -> None:
    with pytest.raises(InvalidArgument):
        Verifier.from_config(SignatureConfig(disabled=True)).verify(REF, "sha256:abc", SignatureMaterial())


def test_cache_keeps_recent_successes() -> None:
    cache = VerificationCache(capacity=2)
    a, b, c = (Verification(digest_of(x), Method.BUNDLED_KEYLESS) for x in (b"a", b"b", b"c"))
    cache.put(a)
    cache.put(b)
    assert cache.get(a.digest) == a  # a is now the most recent
    cache.put(c)
    assert cache.get(b.digest) is None
    assert (cache.get(a.digest), cache.get(c.digest), len(cache)) == (a, c, 2)
