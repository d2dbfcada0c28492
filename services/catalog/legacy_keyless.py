"""Legacy keyless cosign signatures (`sha256-<hex>.sig` with a Fulcio certificate), offline (spec §7.2).

sigstore-python has no API for these: its bundles require a Merkle inclusion proof, which a cosign v2
`dev.sigstore.cosign/bundle` annotation does not carry. So the cosign v2 offline checks are spelled out
here, reusing sigstore-python's pieces for the SCT and the log keyring (private modules, pinned version):

1. the Rekor signed entry timestamp (SET) verifies with a Rekor key of the trusted root — this makes
   the log's `integratedTime` the trusted signing time;
2. the log entry is a hashedrekord of exactly this payload hash, signature and certificate;
3. the certificate chains to a Fulcio CA of the trusted root at that time and was valid then;
4. its embedded SCT verifies with a CT log key; key usage is code signing; the identity matches;
5. the certificate's key signed the payload, and the payload names the image digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import KeyringPurpose
from sigstore._utils import KeyID
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot

from services.catalog.identity import Identity
from services.catalog.signatures import (
    CERTIFICATE_ANNOTATION,
    REKOR_BUNDLE_ANNOTATION,
    LegacySignature,
    check_simple_signing_claim,
    decode_b64,
)
from services.shared.errors import VerificationFailed


def verify_legacy_keyless(
    trusted_root: TrustedRoot, identity: Identity, signatures: Sequence[LegacySignature], image_digest: str
) -> None:
    """Any one signature passing every check is enough (cosign); otherwise all reasons are reported."""
    if not signatures:
        raise VerificationFailed("no signatures found")
    errors: list[str] = []
    for sig in signatures:
        try:
            _verify_one(trusted_root, identity, sig, image_digest)
        except VerificationFailed as exc:
            errors.append(exc.message)
        # Fail closed on anything else: sigstore's errors, or cryptography's ValueError on a malformed
        # certificate extension (parsed lazily, so it can surface in any step).
        except Exception as exc:
            errors.append(" ".join(str(exc).split()) or type(exc).__name__)
        else:
            return
    raise VerificationFailed("no matching signatures: " + "; ".join(errors))


def _verify_one(trusted_root: TrustedRoot, identity: Identity, sig: LegacySignature, image_digest: str) -> None:
    cert = _certificate(sig.annotations)
    signed_at = _verify_rekor_entry(trusted_root, sig, cert)
    chain = _verify_chain(trusted_root, cert, signed_at)
    if not cert.not_valid_before_utc <= signed_at <= cert.not_valid_after_utc:
        raise VerificationFailed(f"certificate was not valid at signing time {signed_at.isoformat()}")
    verify_sct(cert, chain, trusted_root.ct_keyring(KeyringPurpose.VERIFY))
    _check_code_signing(cert)
    identity.verify(cert)
    _verify_payload_signature(cert, sig.signature, sig.payload)
    check_simple_signing_claim(sig.payload, image_digest)


def _certificate(annotations: Mapping[str, str]) -> x509.Certificate:
    pem = annotations.get(CERTIFICATE_ANNOTATION)
    if not pem:
        raise VerificationFailed("signature has no certificate (signed with a key, not keyless)")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise VerificationFailed("signature certificate is not a PEM certificate") from None


def _verify_rekor_entry(trusted_root: TrustedRoot, sig: LegacySignature, cert: x509.Certificate) -> datetime:
    """Check the SET and the entry body; return the log's integration time."""
    raw = sig.annotations.get(REKOR_BUNDLE_ANNOTATION)
    if not raw:
        # cosign would look the entry up online; this verifier stays offline (spec §7.2 lab note).
        raise VerificationFailed("signature has no Rekor bundle annotation; online log lookups are not done")
    try:
        bundle = json.loads(raw)
        payload = bundle["Payload"]
        body, integrated, index, log_id = (payload[k] for k in ("body", "integratedTime", "logIndex", "logID"))
        set_signature = decode_b64(bundle["SignedEntryTimestamp"], "signed entry timestamp")
        if not (isinstance(body, str) and isinstance(log_id, str) and _is_int(integrated) and _is_int(index)):
            raise TypeError
        key_id = bytes.fromhex(log_id)
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed("malformed Rekor bundle annotation") from None
    # RFC 8785 canonical JSON of these four keys: sorted, compact; values are ASCII strings and integers.
    canonical = json.dumps(
        {"body": body, "integratedTime": integrated, "logID": log_id, "logIndex": index},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    try:
        trusted_root.rekor_keyring(KeyringPurpose.VERIFY).verify(
            key_id=KeyID(key_id), signature=set_signature, data=canonical
        )
    except SigstoreError:
        raise VerificationFailed("Rekor signed entry timestamp does not verify") from None
    _check_entry_body(decode_b64(body, "Rekor entry body"), sig, cert)
    try:
        return datetime.fromtimestamp(integrated, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise VerificationFailed(f"Rekor integrated time {integrated} is out of range") from None


def _check_entry_body(body: bytes, sig: LegacySignature, cert: x509.Certificate) -> None:
    """The log entry must record this payload, signature and certificate (cosign `VerifyBundle`)."""
    try:
        entry: Any = json.loads(body)
        if entry["kind"] != "hashedrekord":
            raise VerificationFailed(f"unexpected Rekor entry kind {entry['kind']!r}")
        spec = entry["spec"]
        digest = spec["data"]["hash"]
        signature = decode_b64(spec["signature"]["content"], "Rekor entry signature")
        logged_pem = decode_b64(spec["signature"]["publicKey"]["content"], "Rekor entry certificate")
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed("malformed Rekor entry body") from None
    if digest.get("algorithm") != "sha256" or digest.get("value") != hashlib.sha256(sig.payload).hexdigest():
        raise VerificationFailed("Rekor entry does not record this payload")
    if signature != sig.signature:
        raise VerificationFailed("Rekor entry does not record this signature")
    try:
        logged = x509.load_pem_x509_certificate(logged_pem)
    except ValueError:
        raise VerificationFailed("Rekor entry does not record a certificate") from None
    if logged != cert:
        raise VerificationFailed("Rekor entry records another certificate")


def _verify_chain(trusted_root: TrustedRoot, cert: x509.Certificate, at: datetime) -> list[x509.Certificate]:
    """Path to a Fulcio CA at signing time; returns the issuers (leaf excluded), as the SCT check wants.

    Fulcio leaves carry the code-signing EKU, not client-auth, so only the EKU rule of the WebPKI
    defaults is relaxed (as sigstore-python does for bundles); it is checked separately below.
    """
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(trusted_root.get_fulcio_certs()))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(cert, []).chain[1:])
    except (X509VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise VerificationFailed(f"certificate does not chain to a trusted Fulcio CA: {exc}") from None


def _check_code_signing(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise VerificationFailed("certificate lacks key usage extensions") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationFailed("certificate is not for code signing")


def _verify_payload_signature(cert: x509.Certificate, signature: bytes, payload: bytes) -> None:
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            raise VerificationFailed(f"unsupported certificate key type {type(key).__name__}")
    except InvalidSignature:
        raise VerificationFailed("invalid signature when validating with the certificate") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
