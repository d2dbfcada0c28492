"""Signature material of an upstream image, parsed from already-fetched OCI bytes (factory spec §7.2).

Two carriers exist, and the verifier tries both:

* bundled (cosign v3): OCI referrers of the image whose layer is a Sigstore bundle v0.3 carrying a DSSE
  in-toto statement about the image digest;
* legacy (cosign v2): the tag `sha256-<hex>.sig`, a manifest whose simple-signing layers are the signed
  payloads, the signature in the layer annotation `dev.cosignproject.cosign/signature`.

The caller (an OCI client) fetches: the referrers filtered by `SIGSTORE_BUNDLE_V03`, each referrer
manifest, the blobs `bundle_layers()` names; the `.sig` manifest (a 404 means "none") and the blobs of
its layers. Nothing here touches the network.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from services.shared.errors import VerificationFailed
from services.shared.oci import media_types
from services.shared.oci.manifest import Descriptor, Manifest
from services.shared.oci.reference import digest_of
from services.signer.cosign import SIGNATURE_TYPE

SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
REKOR_BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"
INTOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE: Final = "https://sigstore.dev/cosign/sign/v1"
# Both spellings of the v0.3 media type appear in the wild; sigstore-python accepts both too.
BUNDLE_V03_TYPES: Final = frozenset(
    {media_types.SIGSTORE_BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)


@dataclass(frozen=True)
class LegacySignature:
    """One simple-signing layer of a `.sig` manifest: the signed bytes plus the layer's annotations."""

    payload: bytes
    signature: bytes  # decoded from the base64 annotation
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SignatureMaterial:
    """Everything fetched about one image digest; empty tuples mean "the registry has none"."""

    bundles: tuple[bytes, ...] = ()
    legacy: tuple[LegacySignature, ...] = ()


def bundle_layers(referrer: Manifest, image_digest: str) -> list[Descriptor]:
    """The Sigstore bundle layers of one referrer manifest that refers to `image_digest`.

    The referrers API guarantees `subject`, but the fallback tag index is written by whoever pushes, so
    the subject is checked here again. Other artifacts (SBOMs, attestations) yield nothing.
    """
    doc = referrer.json()
    subject = doc.get("subject")
    if isinstance(subject, dict) and subject.get("digest") != image_digest:
        return []
    return [layer for layer in referrer.layers() if layer.media_type in BUNDLE_V03_TYPES]


def legacy_signatures(sig_manifest: Manifest, blobs: Mapping[str, bytes]) -> tuple[LegacySignature, ...]:
    """The simple-signing layers of a `sha256-<hex>.sig` manifest, with `blobs` keyed by layer digest."""
    found: list[LegacySignature] = []
    for layer in sig_manifest.layers():
        if layer.media_type != media_types.COSIGN_SIMPLE_SIGNING:
            continue
        payload = blobs.get(layer.digest)
        if payload is None:
            raise VerificationFailed(f"signature layer {layer.digest} was not fetched")
        if digest_of(payload) != layer.digest:
            raise VerificationFailed(f"signature layer {layer.digest} does not match its digest")
        encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
        if encoded is None:
            continue  # cosign skips layers without a signature as well
        found.append(LegacySignature(payload, decode_b64(encoded, "signature annotation"), layer.annotations))
    return tuple(found)


def check_simple_signing_claim(payload: bytes, image_digest: str) -> None:
    """The payload must be a cosign simple-signing document naming `image_digest` (cosign
    `SimpleClaimVerifier`); the docker-reference is not checked, as cosign does not either."""
    try:
        critical = json.loads(payload)["critical"]
        kind = critical["type"]
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed("signature payload is not a simple-signing document") from None
    if kind != SIGNATURE_TYPE:
        raise VerificationFailed(f"signature payload has unexpected type {kind!r}")
    if digest != image_digest:
        raise VerificationFailed(f"signature payload is for digest {digest}, expected {image_digest}")


def check_statement(payload_type: str, payload: bytes, image_digest: str) -> None:
    """A DSSE payload must be an in-toto v1 statement about `image_digest` with the cosign "sign"
    predicate (spec §7.2; image-factory `VerifySubjectAndPredicate`)."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationFailed(f"unexpected DSSE payload type {payload_type!r}")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise VerificationFailed("failed to parse in-toto statement") from None
    if not isinstance(statement, dict):
        raise VerificationFailed("failed to parse in-toto statement")
    algorithm, _, hex_digest = image_digest.partition(":")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not any(
        isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get(algorithm) == hex_digest
        for s in subjects
    ):
        raise VerificationFailed(f"invalid in-toto subject: no subject with digest {image_digest}")
    if statement.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(f"unexpected statement type {statement.get('_type')!r}")
    if statement.get("predicateType") != COSIGN_SIGN_PREDICATE:
        raise VerificationFailed(f"unexpected predicate type {statement.get('predicateType')!r}")


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def decode_b64(text: object, what: str) -> bytes:
    """Standard base64; protobuf JSON (bundles) may also use the URL-safe alphabet without padding."""
    if not isinstance(text, str):
        raise VerificationFailed(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed(f"{what} is not valid base64") from None
