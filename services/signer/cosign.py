"""Cosign "simple signing" signatures for cached assets and installer indexes (factory spec §9.4).

The payload bytes must be exactly what cosign itself would produce for the same (repository, digest):
compact JSON, Go struct field order, no trailing newline, `"optional":null`. Lab check
(shared/lab/REPORT.md §2): `cosign verify --offline --insecure-ignore-tlog` accepts these signatures.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from services.shared.errors import InvalidArgument, VerificationFailed
from services.signer.keys import CosignKey

SIGNATURE_TYPE = "cosign container image signature"
# `<registry>/<repository>` (no tag, no digest): the identity cosign writes. Restricting it to the OCI
# name grammar also means Go's HTML-escaping json.Marshal and Python's json.dumps produce equal bytes.
_REFERENCE = re.compile(r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class SignedImage:
    """What a verified payload vouches for."""

    reference: str
    digest: str


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """The exact bytes that get signed (factory spec §9.4)."""
    if not _REFERENCE.match(reference):
        raise InvalidArgument(f"invalid docker reference for signing: {reference!r}")
    if not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid manifest digest for signing: {digest!r}")
    body = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def sign_cosign(key: CosignKey, reference: str, digest: str) -> tuple[bytes, str]:
    """Returns (payload, base64 of the ASN.1 DER ECDSA-SHA256 signature)."""
    payload = simple_signing_payload(reference, digest)
    return payload, base64.b64encode(key.sign(payload)).decode("ascii")


def verify_cosign(
    public_key_pem: bytes,
    payload: bytes,
    signature_b64: str,
    expected_digest: str | None = None,
) -> SignedImage:
    """Check the signature over `payload` and, if given, that it names `expected_digest`.

    Any failure raises `VerificationFailed` with a one-line reason. Like `cosign verify`, the identity
    (docker-reference) is returned but not checked: callers that care compare it themselves.
    """
    try:
        public_key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationFailed("cosign public key is not a valid PEM public key") from exc
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationFailed("cosign signature is not valid base64") from exc
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
        else:
            raise VerificationFailed(f"unsupported cosign public key type {type(public_key).__name__}")
    except InvalidSignature as exc:
        raise VerificationFailed("invalid cosign signature") from exc
    image = _parse_payload(payload)
    if expected_digest is not None and image.digest != expected_digest:
        raise VerificationFailed(f"cosign payload is for digest {image.digest}, expected {expected_digest}")
    return image


def _parse_payload(payload: bytes) -> SignedImage:
    try:
        critical = json.loads(payload)["critical"]
        kind = critical["type"]
        reference = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationFailed("cosign payload is not a simple-signing document") from exc
    if kind != SIGNATURE_TYPE:
        raise VerificationFailed(f"cosign payload has unexpected type {kind!r}")
    if not isinstance(reference, str) or not isinstance(digest, str):
        raise VerificationFailed("cosign payload is not a simple-signing document")
    return SignedImage(reference, digest)
