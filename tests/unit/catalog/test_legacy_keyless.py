"""Legacy (cosign v2 `.sig`) keyless signatures, checked offline against a synthetic Sigstore instance."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.catalog.identity import Identity, load_trusted_root
from services.catalog.signatures import CERTIFICATE_ANNOTATION, REKOR_BUNDLE_ANNOTATION, LegacySignature
from services.catalog.verify_keyless import KeylessVerifier
from services.shared.errors import VerificationFailed
from services.shared.oci.reference import digest_of
from services.signer.cosign import simple_signing_payload
from tests.unit.catalog.fake_sigstore import FakeSigstore

pytestmark = pytest.mark.usefixtures("offline")

DIGEST = digest_of(b"an extensions catalog index")
OTHER_DIGEST = digest_of(b"something else")
PAYLOAD = simple_signing_payload("ghcr.io/siderolabs/extensions", DIGEST)


@pytest.fixture(scope="module")
def sigstore() -> FakeSigstore:
    return FakeSigstore()


@pytest.fixture(scope="module")
def verifier(sigstore: FakeSigstore) -> KeylessVerifier:
    return KeylessVerifier(Identity.from_config(), load_trusted_root(sigstore.trusted_root_json()))


def rejected(verifier: KeylessVerifier, signature: LegacySignature, digest: str = DIGEST) -> str:
    with pytest.raises(VerificationFailed) as info:
        verifier.verify_legacy([signature], digest)
    assert info.value.message.startswith("no matching signatures: ")
    return info.value.message


def test_valid_signature(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    verifier.verify_legacy([sigstore.legacy_signature(PAYLOAD)], DIGEST)


def test_service_account_identity(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    email = "releasemgr-svc@talos-production.iam.gserviceaccount.com"
    verifier.verify_legacy([sigstore.legacy_signature(PAYLOAD, email=email)], DIGEST)


def test_other_digest(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    assert "is for digest" in rejected(verifier, sigstore.legacy_signature(PAYLOAD), OTHER_DIGEST)


def test_other_subject(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    message = rejected(verifier, sigstore.legacy_signature(PAYLOAD, email="mallory@siderolabs.com.evil.example"))
    assert "none of the expected identities matched" in message


def test_other_issuer(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    signature = sigstore.legacy_signature(PAYLOAD, issuer="https://token.actions.githubusercontent.com")
    assert "none of the expected identities matched" in rejected(verifier, signature)


def test_tampered_payload(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    good = sigstore.legacy_signature(PAYLOAD)
    forged = LegacySignature(
        simple_signing_payload("ghcr.io/siderolabs/extensions", OTHER_DIGEST), good.signature, good.annotations
    )
    assert "Rekor entry does not record this payload" in rejected(verifier, forged, OTHER_DIGEST)


def test_log_entry_for_other_payload(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    signature = sigstore.legacy_signature(PAYLOAD, logged_payload=b"something else")
    assert "Rekor entry does not record this payload" in rejected(verifier, signature)


def test_signed_entry_timestamp_from_unknown_log(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    signature = sigstore.legacy_signature(PAYLOAD, rekor_key=ec.generate_private_key(ec.SECP256R1()))
    assert "Rekor signed entry timestamp does not verify" in rejected(verifier, signature)


def test_moved_integration_time(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    good = sigstore.legacy_signature(PAYLOAD)
    bundle = json.loads(good.annotations[REKOR_BUNDLE_ANNOTATION])
    bundle["Payload"]["integratedTime"] -= 3600
    moved = LegacySignature(
        good.payload, good.signature, {**good.annotations, REKOR_BUNDLE_ANNOTATION: json.dumps(bundle)}
    )
    assert "Rekor signed entry timestamp does not verify" in rejected(verifier, moved)


def test_logged_after_certificate_expired(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    signature = sigstore.legacy_signature(PAYLOAD, signed_after=timedelta(minutes=11))
    assert "does not chain to a trusted Fulcio CA" in rejected(verifier, signature)


def test_sct_from_unknown_ct_log(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    signature = sigstore.legacy_signature(PAYLOAD, ct_key=ec.generate_private_key(ec.SECP256R1()))
    assert "SCT verify failed" in rejected(verifier, signature)


def test_certificate_from_other_ca(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    # Another "Fulcio" entirely: its own CA, CT log and Rekor; only the trusted root differs.
    assert "Rekor signed entry timestamp does not verify" in rejected(
        verifier, FakeSigstore().legacy_signature(PAYLOAD)
    )
    other = FakeSigstore(rekor_key=sigstore.rekor_key, ct_key=sigstore.ct_key)
    assert "does not chain to a trusted Fulcio CA" in rejected(verifier, other.legacy_signature(PAYLOAD))


def test_key_signed_signature_is_not_keyless(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    good = sigstore.legacy_signature(PAYLOAD)
    annotations = {k: v for k, v in good.annotations.items() if k != CERTIFICATE_ANNOTATION}
    assert "has no certificate" in rejected(verifier, LegacySignature(good.payload, good.signature, annotations))


def test_no_rekor_bundle_means_no_online_lookup(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    good = sigstore.legacy_signature(PAYLOAD)
    annotations = {k: v for k, v in good.annotations.items() if k != REKOR_BUNDLE_ANNOTATION}
    assert "online log lookups are not done" in rejected(
        verifier, LegacySignature(good.payload, good.signature, annotations)
    )


def test_signature_not_by_certificate_key(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    # Logged consistently, chained and identified, but signed by some other key.
    signature = sigstore.legacy_signature(PAYLOAD, signing_key=ec.generate_private_key(ec.SECP256R1()))
    assert "invalid signature when validating with the certificate" in rejected(verifier, signature)


def test_signature_not_the_logged_one(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    good = sigstore.legacy_signature(PAYLOAD)
    bundle = json.loads(good.annotations[REKOR_BUNDLE_ANNOTATION])
    body = json.loads(base64.b64decode(bundle["Payload"]["body"]))
    assert body["spec"]["signature"]["content"] == base64.b64encode(good.signature).decode()
    forged = LegacySignature(good.payload, b"\x30\x06\x02\x01\x01\x02\x01\x01", good.annotations)
    assert "Rekor entry does not record this signature" in rejected(verifier, forged)


def test_any_valid_signature_suffices(sigstore: FakeSigstore, verifier: KeylessVerifier) -> None:
    bad = sigstore.legacy_signature(PAYLOAD, email="someone@example.com")
    verifier.verify_legacy([bad, sigstore.legacy_signature(PAYLOAD)], DIGEST)


def test_no_signatures(verifier: KeylessVerifier) -> None:
    with pytest.raises(VerificationFailed, match="no signatures found"):
        verifier.verify_legacy([], DIGEST)
