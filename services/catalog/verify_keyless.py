"""Keyless (Fulcio certificate) signature checks against a Sigstore trusted root (factory spec §7.2).

Fully offline: the trusted root comes from `identity.load_trusted_root` (no TUF), and the transparency
log is checked only through what the signature carries — for bundles the inclusion proof with its
signed checkpoint (plus the signed entry timestamp when present), for legacy `.sig` signatures the
Rekor signed entry timestamp in the `dev.sigstore.cosign/bundle` annotation. Rekor is never queried.
"""

from __future__ import annotations

from collections.abc import Sequence

from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier as SigstoreVerifier

from services.catalog.identity import Identity, load_trusted_root
from services.catalog.legacy_keyless import verify_legacy_keyless
from services.catalog.signatures import LegacySignature, check_statement
from services.shared.errors import VerificationFailed


class KeylessVerifier:
    """Bundled and legacy keyless checks for one identity and one trusted root."""

    def __init__(self, identity: Identity, trusted_root: TrustedRoot | None = None) -> None:
        self.identity = identity
        self.trusted_root = trusted_root if trusted_root is not None else load_trusted_root()
        # Constructing it does no I/O; only its (unused here) signing helpers would talk to Rekor.
        self._sigstore = SigstoreVerifier(trusted_root=self.trusted_root)

    def verify_bundle(self, bundle: bytes, image_digest: str) -> None:
        """A cosign v3 bundle: certificate chain to Fulcio at the log/TSA time, SCT, identity, inclusion
        proof + checkpoint, DSSE signature and log-entry consistency (all sigstore-python), then the
        in-toto statement about `image_digest` (spec §7.2)."""
        try:
            parsed = Bundle.from_json(bundle)
            payload_type, payload = self._sigstore.verify_dsse(parsed, self.identity)
        # Fail closed on anything sigstore raises: its own errors, pydantic's ValueErrors on odd input.
        except Exception as exc:
            raise VerificationFailed(" ".join(str(exc).split()) or type(exc).__name__) from None
        check_statement(payload_type, payload, image_digest)

    def verify_legacy(self, signatures: Sequence[LegacySignature], image_digest: str) -> None:
        """cosign v2 `.sig` signatures carrying a Fulcio certificate and a Rekor bundle annotation."""
        verify_legacy_keyless(self.trusted_root, self.identity, signatures, image_digest)
