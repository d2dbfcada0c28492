"""Signature checks against a configured public key (`containerSignature.publicKeyFile`, spec §7.2, §13).

Like the Go service (cosign `CheckOpts{SigVerifier, Offline, IgnoreTlog}`) this trusts the key alone:
no transparency log, no certificate. Keys are loaded the way sigstore's `LoadVerifier` treats them:
ECDSA and RSA (PKCS#1 v1.5) with the configured hash, Ed25519 without one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from services.catalog.signatures import (
    BUNDLE_V03_TYPES,
    LegacySignature,
    check_simple_signing_claim,
    check_statement,
    decode_b64,
    dsse_pae,
)
from services.shared.config import ConfigError
from services.shared.errors import VerificationFailed

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# `publicKeyHashAlgo` values (spec §13; cosign `signature_digest.go`).
HASH_ALGORITHMS: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def parse_hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """Case- and space-insensitive; empty means sha256, as in the Go `getHashAlgo`."""
    normalized = name.strip().lower() or "sha256"
    if normalized not in HASH_ALGORITHMS:
        raise ConfigError(f"unknown digest algorithm: {name}")
    return HASH_ALGORITHMS[normalized]()


@dataclass(frozen=True)
class PublicKeyVerifier:
    key: PublicKey
    hash_algorithm: hashes.HashAlgorithm

    @classmethod
    def from_pem(cls, pem: bytes, hash_algorithm: str = "sha256") -> PublicKeyVerifier:
        """Load at startup: a key that cannot be used is a configuration error, not a failed check."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"containerSignature.publicKeyFile: not a PEM public key ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise ConfigError(f"containerSignature.publicKeyFile: unsupported key type {type(key).__name__}")
        return cls(key, parse_hash_algorithm(hash_algorithm))

    def verify_signature(self, signature: bytes, data: bytes) -> None:
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(self.hash_algorithm))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), self.hash_algorithm)
            else:
                self.key.verify(signature, data)
        except InvalidSignature:
            raise VerificationFailed("invalid signature when validating with the public key") from None

    def verify_legacy(self, signatures: Sequence[LegacySignature], image_digest: str) -> None:
        """Any one simple-signing layer that verifies and names `image_digest` is enough (cosign)."""
        if not signatures:
            raise VerificationFailed("no signatures found")
        errors: list[str] = []
        for sig in signatures:
            try:
                self.verify_signature(sig.signature, sig.payload)
                check_simple_signing_claim(sig.payload, image_digest)
            except VerificationFailed as exc:
                errors.append(exc.message)
            else:
                return
        raise VerificationFailed("no matching signatures: " + "; ".join(errors))

    def verify_bundle(self, bundle: bytes, image_digest: str) -> None:
        """A Sigstore bundle v0.3 signed by the key: DSSE (the cosign v3 form) or a message signature
        whose message digest is the image digest. The verification material (key hint, any log entry)
        is unauthenticated and ignored, as with cosign's `IgnoreTlog`."""
        doc = _load_bundle(bundle)
        envelope, message = doc.get("dsseEnvelope"), doc.get("messageSignature")
        if isinstance(envelope, dict):
            self._verify_dsse(envelope, image_digest)
        elif isinstance(message, dict):
            self._verify_message(message, image_digest)
        else:
            raise VerificationFailed("bundle has neither a DSSE envelope nor a message signature")

    def _verify_dsse(self, envelope: dict[str, object], image_digest: str) -> None:
        payload_type = envelope.get("payloadType")
        if not isinstance(payload_type, str):
            raise VerificationFailed("DSSE envelope has no payload type")
        payload = decode_b64(envelope.get("payload"), "DSSE payload")
        entries = envelope.get("signatures")
        if not isinstance(entries, list) or not entries:
            raise VerificationFailed("DSSE envelope has no signatures")
        pae = dsse_pae(payload_type, payload)
        for entry in entries:
            try:
                self.verify_signature(decode_b64(entry.get("sig") if isinstance(entry, dict) else None, "sig"), pae)
            except VerificationFailed:
                continue
            break
        else:
            raise VerificationFailed("DSSE envelope: no signature verifies with the public key")
        check_statement(payload_type, payload, image_digest)

    def _verify_message(self, message: dict[str, object], image_digest: str) -> None:
        # The signed artifact of an image is its manifest, whose sha256 is the image digest, so the
        # signature can be checked over the digest alone (prehashed) without the manifest bytes.
        digest = message.get("messageDigest")
        if not isinstance(digest, dict) or digest.get("algorithm") != "SHA2_256":
            raise VerificationFailed("message signature bundle without a SHA2_256 message digest")
        value = decode_b64(digest.get("digest"), "message digest")
        if "sha256:" + value.hex() != image_digest:
            raise VerificationFailed(f"bundle message digest sha256:{value.hex()} is not {image_digest}")
        signature = decode_b64(message.get("signature"), "message signature")
        prehashed = Prehashed(hashes.SHA256())
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, value, ec.ECDSA(prehashed))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, value, padding.PKCS1v15(), prehashed)
            else:
                # Ed25519 signs the message itself, not a digest: the manifest bytes would be needed.
                raise VerificationFailed("message signature bundles cannot be checked with an Ed25519 key")
        except InvalidSignature:
            raise VerificationFailed("invalid message signature when validating with the public key") from None


def _load_bundle(bundle: bytes) -> dict[str, object]:
    try:
        doc = json.loads(bundle)
    except ValueError:
        raise VerificationFailed("bundle is not JSON") from None
    if not isinstance(doc, dict):
        raise VerificationFailed("bundle is not a JSON object")
    if doc.get("mediaType") not in BUNDLE_V03_TYPES:
        raise VerificationFailed(f"unsupported bundle media type {doc.get('mediaType')!r}")
    return doc
