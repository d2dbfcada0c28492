"""A Signer for store tests that signs with a real ECDSA key in-process (the signer's own domain code).

It is the same cryptography the signer service runs, minus the gRPC hop; the hop itself is covered by
the signer servicer tests and the end-to-end tests.
"""

from __future__ import annotations

from pathlib import Path

from services.cache.model import Signature
from services.shared.errors import VerificationFailed
from services.signer.cosign import sign_cosign, verify_cosign
from services.signer.keys import KeySet, load_or_generate


class LocalSigner:
    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    @classmethod
    def generate(cls, state_dir: Path) -> LocalSigner:
        return cls(load_or_generate(state_dir))

    async def sign(self, reference: str, digest: str) -> Signature:
        payload, signature = sign_cosign(self.keys.cosign, reference, digest)
        return Signature(payload=payload, signature_base64=signature)

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        try:
            verify_cosign(
                self.keys.cosign.public_key_pem(),
                signature.payload,
                signature.signature_base64,
                expected_digest=expected_digest,
            )
        except VerificationFailed as exc:
            return exc.message
        return None
