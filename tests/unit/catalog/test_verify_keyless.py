"""Keyless verification of the real upstream Sigstore bundle, offline (factory spec §7.2).

The fixture is the real extensions-catalog image and its cosign v3 bundle referrer (Fulcio certificate
for `albert.kostusev@siderolabs.com`, issuer `https://accounts.google.com`, Rekor inclusion proof).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.catalog.identity import DEFAULT_SUBJECT_REGEXP, Identity, certificate_issuer, certificate_subjects
from services.catalog.identity import load_trusted_root as load_root
from services.catalog.signatures import SignatureMaterial
from services.catalog.verify import Method, SignatureConfig, Verifier
from services.catalog.verify_keyless import KeylessVerifier
from services.shared.config import ConfigError
from services.shared.errors import VerificationFailed
from tests.unit.catalog.fake_sigstore import FakeSigstore

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture(scope="module")
def default_verifier() -> KeylessVerifier:
    return KeylessVerifier(Identity.from_config())


def test_real_bundle_verifies_offline_with_defaults(
    real_bundle: bytes, catalog_digest: str, default_verifier: KeylessVerifier, offline: Path
) -> None:
    default_verifier.verify_bundle(real_bundle, catalog_digest)
    # Through the configured verifier, as the catalog runs it.
    verifier = Verifier.from_config(SignatureConfig())
    result = verifier.verify(
        "ghcr.io/siderolabs/extensions@" + catalog_digest, catalog_digest, SignatureMaterial((real_bundle,))
    )
    assert result.method is Method.BUNDLED_KEYLESS and result.verified
    # Nothing was written to a TUF cache or any other per-user directory.
    assert list(offline.iterdir()) == []


def test_real_certificate_identity(real_bundle: bytes) -> None:
    from sigstore.models import Bundle

    cert = Bundle.from_json(real_bundle).signing_certificate
    assert certificate_subjects(cert) == ["albert.kostusev@siderolabs.com"]
    assert certificate_issuer(cert) == "https://accounts.google.com"


@pytest.mark.parametrize(
    "identity",
    [
        Identity.from_config(subject_regexp=DEFAULT_SUBJECT_REGEXP),
        Identity.from_config(subject_regexp=r"^albert\.kostusev@siderolabs\.com$"),
        Identity.from_config(issuer="ignored when a regexp is set", issuer_regexp=r"^https://accounts\.google\.com$"),
    ],
)
def test_matching_identities(real_bundle: bytes, catalog_digest: str, identity: Identity) -> None:
    KeylessVerifier(identity).verify_bundle(real_bundle, catalog_digest)


@pytest.mark.parametrize(
    "identity",
    [
        Identity.from_config(subject_regexp=r"@example\.com$"),
        Identity.from_config(subject_regexp=r"^releasemgr-svc@talos-production\.iam\.gserviceaccount\.com$"),
        Identity.from_config(issuer="https://token.actions.githubusercontent.com"),
        Identity.from_config(issuer="https://accounts.google.com/"),
        Identity.from_config(issuer_regexp=r"^https://github\.com/login/oauth$"),
    ],
)
def test_other_identities_rejected(real_bundle: bytes, catalog_digest: str, identity: Identity) -> None:
    with pytest.raises(VerificationFailed) as info:
        KeylessVerifier(identity).verify_bundle(real_bundle, catalog_digest)
    assert "none of the expected identities matched" in info.value.message
    assert "albert.kostusev@siderolabs.com" in info.value.message


def test_wrong_image_digest_rejected(real_bundle: bytes, default_verifier: KeylessVerifier) -> None:
    other = "sha256:" + "0" * 64
    with pytest.raises(VerificationFailed, match="invalid in-toto subject"):
        default_verifier.verify_bundle(real_bundle, other)


def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper_payload(doc: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "1" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _tamper_signature(doc: dict[str, Any]) -> None:
    sig = doc["dsseEnvelope"]["signatures"][0]
    sig["sig"] = _flip_b64(sig["sig"])


def _tamper_proof(doc: dict[str, Any]) -> None:
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"][3] = _flip_b64(proof["hashes"][3])


def _tamper_checkpoint(doc: dict[str, Any]) -> None:
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace("1957890669", "1957890670", 1)


def _tamper_log_time(doc: dict[str, Any]) -> None:
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)


def _tamper_certificate(doc: dict[str, Any]) -> None:
    cert = doc["verificationMaterial"]["certificate"]
    cert["rawBytes"] = _flip_b64(cert["rawBytes"])


def _drop_log_entry(doc: dict[str, Any]) -> None:
    doc["verificationMaterial"]["tlogEntries"] = []


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_payload, "DSSE: invalid signature"),
        (_tamper_signature, "DSSE: invalid signature"),
        (_tamper_proof, "inclusion proof contains invalid root hash"),
        (_tamper_checkpoint, "checkpoint: invalid signature"),
        (_tamper_log_time, "SET: invalid inclusion promise"),
        (_tamper_certificate, "certificate chain"),
        (_drop_log_entry, "expected exactly one log entry"),
    ],
)
def test_tampered_bundle_rejected(
    real_bundle: bytes,
    catalog_digest: str,
    default_verifier: KeylessVerifier,
    tamper: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    doc = json.loads(real_bundle)
    tamper(doc)
    with pytest.raises(VerificationFailed, match=reason):
        default_verifier.verify_bundle(json.dumps(doc).encode(), catalog_digest)


@pytest.mark.parametrize(
    "bundle", [b"", b"{", b"[]", b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}']
)
def test_malformed_bundle_rejected(bundle: bytes, catalog_digest: str, default_verifier: KeylessVerifier) -> None:
    with pytest.raises(VerificationFailed):
        default_verifier.verify_bundle(bundle, catalog_digest)


def test_other_trusted_root_rejects_real_bundle(real_bundle: bytes, catalog_digest: str) -> None:
    # A root without the public-good Fulcio/Rekor keys must not accept a public-good signature.
    verifier = KeylessVerifier(Identity.from_config(), load_root(FakeSigstore().trusted_root_json()))
    with pytest.raises(VerificationFailed):
        verifier.verify_bundle(real_bundle, catalog_digest)


def test_bad_identity_or_root_configuration() -> None:
    with pytest.raises(ConfigError, match="subjectRegExp"):
        Identity.from_config(subject_regexp="(unclosed")
    with pytest.raises(ConfigError, match="issuerRegExp"):
        Identity.from_config(issuer_regexp="[")
    with pytest.raises(ConfigError, match="invalid Sigstore trusted root"):
        load_root(b'{"mediaType": "nope"}')
