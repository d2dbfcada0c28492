"""Positive signature checks are reused for a while; failures never are."""

from __future__ import annotations

import pytest

from services.cache.model import Signature
from services.cache.signing import RememberingVerifier


class CountingSigner:
    def __init__(self) -> None:
        self.calls = 0
        self.valid = True

    async def sign(self, reference: str, digest: str) -> Signature:
        return Signature(b"payload", "c2ln")

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        self.calls += 1
        return None if self.valid else "signature did not verify"


SIG = Signature(b'{"critical":{}}', "c2lnbmF0dXJl")


async def test_a_valid_signature_is_checked_once_within_the_ttl() -> None:
    signer = CountingSigner()
    verifier = RememberingVerifier(signer, ttl=60)
    assert [await verifier.verify(SIG, "sha256:a") for _ in range(3)] == [None, None, None]
    assert signer.calls == 1
    assert await verifier.verify(SIG, "sha256:b") is None  # another digest is another question
    assert await verifier.verify(Signature(SIG.payload, "b3RoZXI="), "sha256:a") is None  # another signature too
    assert signer.calls == 3


async def test_failures_are_never_remembered() -> None:
    signer = CountingSigner()
    signer.valid = False
    verifier = RememberingVerifier(signer, ttl=60)
    assert await verifier.verify(SIG, "sha256:a") == "signature did not verify"
    assert await verifier.verify(SIG, "sha256:a") == "signature did not verify"
    assert signer.calls == 2


async def test_success_expires_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("services.cache.signing.time.monotonic", lambda: now[0])
    signer = CountingSigner()
    verifier = RememberingVerifier(signer, ttl=60)
    await verifier.verify(SIG, "sha256:a")
    now[0] += 59
    await verifier.verify(SIG, "sha256:a")
    assert signer.calls == 1
    now[0] += 2
    signer.valid = False  # e.g. the key was rotated: the signer's answer counts again
    assert await verifier.verify(SIG, "sha256:a") == "signature did not verify"
    assert signer.calls == 2


async def test_capacity_bounds_the_memory() -> None:
    signer = CountingSigner()
    verifier = RememberingVerifier(signer, ttl=60, capacity=2)
    for digest in ("sha256:a", "sha256:b", "sha256:c"):
        await verifier.verify(SIG, digest)
    await verifier.verify(SIG, "sha256:a")  # evicted as the oldest: asked again
    assert signer.calls == 4
